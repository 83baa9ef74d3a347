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
                needles.push(percent_decode(password));
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

/// `%XX` escapes decoded (what the URL parser gives the server as the password).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
