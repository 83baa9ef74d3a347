//! The names of a namespace's Redis keys (`pwc:{ns}:…`: the layout is in the module docs), and
//! the escaping of a name for a `SCAN MATCH` pattern.

/// The names of a namespace's keys.
#[derive(Debug, Clone)]
pub(super) struct Names {
    /// `pwc:{ns}:`
    pub(super) prefix: String,
    pub(super) idx: String,
    pub(super) exp: String,
    pub(super) ins: String,
    pub(super) seq: String,
    pub(super) hid: String,
    pub(super) probe: String,
    pub(super) channel: String,
}

impl Names {
    pub(super) fn new(namespace: &str) -> Self {
        let prefix = format!("pwc:{{{namespace}}}:");
        let name = |suffix: &str| format!("{prefix}{suffix}");
        Self {
            idx: name("idx"),
            exp: name("exp"),
            ins: name("ins"),
            seq: name("seq"),
            hid: name("hid"),
            probe: name("probe"),
            channel: name("events"),
            prefix,
        }
    }

    pub(super) fn entry(&self, key: &str) -> String {
        format!("{}e:{key}", self.prefix)
    }

    pub(super) fn history(&self, key: &str) -> String {
        format!("{}h:{key}", self.prefix)
    }
}

/// `text` with the special characters of a `SCAN MATCH` pattern escaped.
pub(super) fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
