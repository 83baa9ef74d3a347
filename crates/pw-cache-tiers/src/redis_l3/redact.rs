//! [`Redactor`]: the URL of the server (its user info and password, as written and
//! percent-decoded) replaced by `***` in every text about the server, so that no error and
//! no log line holds it.

use std::fmt;

/// Replaces, in text about the server, everything of its URL that may be secret.
pub(super) struct Redactor {
    /// Longest first.
    needles: Vec<String>,
}

impl Redactor {
    pub(super) fn new(url: &str) -> Self {
        let mut needles = vec![url.to_owned()];
        let authority = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(rest));
        if let Some((userinfo, _host)) = authority.rsplit_once('@') {
            needles.push(userinfo.to_owned());
            // `user:password` or `:password` (a lone name is a user name, no secret).
            if let Some((_user, password)) = userinfo.split_once(':') {
                needles.push(password.to_owned());
                needles.push(
                    percent_encoding::percent_decode_str(password)
                        .decode_utf8_lossy()
                        .into_owned(),
                );
            }
        }
        needles.retain(|n| !n.is_empty());
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Self { needles }
    }

    pub(super) fn clean(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), "***");
            }
        }
        out
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Redactor")
    }
}
