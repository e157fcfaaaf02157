//! `DYN_ZMQ_BROKER_URL`, as 1.6.1's `parse_broker_url` reads it:
//! `xsub=tcp://h1:5555;tcp://h2:5555 , xpub=tcp://h1:5556;tcp://h2:5556`.

/// Where publishers (XSUB) and subscribers (XPUB) connect in broker mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoints {
    /// Publishers connect here.
    pub xsub: Vec<String>,
    /// Subscribers connect here.
    pub xpub: Vec<String>,
}

/// A broker URL that cannot be used; the message names the part and the whole value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DYN_ZMQ_BROKER_URL: '{value}' {problem}")]
pub struct BrokerUrlError {
    /// The whole value.
    pub value: String,
    /// What is wrong.
    pub problem: &'static str,
}

/// Parses the two comma-separated halves, each a `;` list; both must name an endpoint.
pub fn parse_broker_url(url: &str) -> Result<BrokerEndpoints, BrokerUrlError> {
    let err = |problem| BrokerUrlError {
        value: url.to_owned(),
        problem,
    };
    let parts: Vec<&str> = url.split(',').map(str::trim).collect();
    if parts.len() != 2 {
        return Err(err(
            "is not 'xsub=<urls> , xpub=<urls>' (two parts separated by a comma)",
        ));
    }
    let list = |s: &str| -> Vec<String> {
        s.split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (mut xsub, mut xpub) = (Vec::new(), Vec::new());
    for part in parts {
        if let Some(rest) = part.strip_prefix("xsub=") {
            xsub = list(rest);
        } else if let Some(rest) = part.strip_prefix("xpub=") {
            xpub = list(rest);
        } else {
            return Err(err(
                "has a part that starts with neither 'xsub=' nor 'xpub='",
            ));
        }
    }
    if xsub.is_empty() || xpub.is_empty() {
        return Err(err("must name at least one xsub and one xpub endpoint"));
    }
    Ok(BrokerEndpoints { xsub, xpub })
}
