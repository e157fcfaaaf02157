//! Cancellation tokens that work on any executor (Dynamo's primary and child tokens).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use event_listener::Event;

#[derive(Default)]
struct Node {
    cancelled: AtomicBool,
    changed: Event,
    children: Mutex<Vec<Weak<Self>>>,
}

impl Node {
    fn cancel(&self) {
        if self.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        self.changed.notify(usize::MAX);
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|p| p.into_inner()));
        for child in children.iter().filter_map(Weak::upgrade) {
            child.cancel();
        }
    }
}

/// A cancellation signal. Cancelling a token cancels its children, never its parent.
#[derive(Clone, Default)]
pub struct CancellationToken {
    node: Arc<Node>,
}

impl CancellationToken {
    /// A new, uncancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token cancelled when this one is (or by itself).
    pub fn child_token(&self) -> Self {
        let child = Self::new();
        let mut children = self.node.children.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_cancelled() {
            child.cancel();
        } else {
            children.retain(|c| c.strong_count() > 0);
            children.push(Arc::downgrade(&child.node));
        }
        child
    }

    /// Cancels this token and its children.
    pub fn cancel(&self) {
        self.node.cancel();
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.node.cancelled.load(Ordering::Acquire)
    }

    /// Completes once the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let listener = self.node.changed.listen();
            if self.is_cancelled() {
                return;
            }
            listener.await;
        }
    }
}

impl std::fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancellationToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelling_a_parent_cancels_children_but_not_the_other_way() {
        let parent = CancellationToken::new();
        let child = parent.child_token();
        let grandchild = child.child_token();
        grandchild.cancel();
        assert!(!child.is_cancelled() && !parent.is_cancelled());
        let other = parent.child_token();
        parent.cancel();
        assert!(child.is_cancelled() && other.is_cancelled());
        assert!(
            parent.child_token().is_cancelled(),
            "a child of a cancelled token starts cancelled"
        );
        futures_lite::future::block_on(other.cancelled());
    }
}
