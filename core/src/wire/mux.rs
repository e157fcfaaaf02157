//! dynrt's own multiplexed framing (being written).
