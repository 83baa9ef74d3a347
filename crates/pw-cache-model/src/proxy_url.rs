//! The one proxy-URL validator of the workspace ([`ProxyUrl::parse`], [`validate_proxy_url`]),
//! with the `url` crate: what a warm file's `proxy_url`, `CacheManager::new_entry` and
//! `CacheManager::put` accept. A proxy URL is `scheme://host:port` with a proxy scheme
//! ([`PROXY_SCHEMES`]; `http` and `https` may leave the port to its default), no path beyond
//! `/`, no query, no fragment, no whitespace, control character or backslash. Credentials in its
//! authority (`scheme://user:pass@host:port`) are split off by [`ProxyUrl::parse`] (a warm file
//! may carry them so); a URL to be stored as it is must have none ([`validate_proxy_url`]): the
//! URL reaches the disk in plaintext, credentials only encrypted.
//!
//! Entries read back from storage are not validated: a tier reads what proxywhirl wrote
//! (any text) and never refuses it for its URL.

use std::fmt;

use percent_encoding::percent_decode_str;
use url::Url;

use crate::fields::PROXY_URL;
use crate::secret::Secret;

/// The URL schemes a proxy URL may have.
pub const PROXY_SCHEMES: [&str; 6] = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"];

/// What proxywhirl's export writes in place of a credential (and so never a credential itself).
pub const CREDENTIAL_MASK: &str = "***";

/// Why a text is not a proxy URL: a reason naming `proxy_url` and the rule it breaks, never
/// showing the URL (it may hold credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidProxyUrl(String);

impl InvalidProxyUrl {
    /// The reason, as its `Display`.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

/// A validated proxy URL, split from its credentials.
pub struct ProxyUrl {
    /// The text to store: as written, without userinfo.
    pub stored: String,
    /// The percent-decoded username of the userinfo, if non-empty and not `"***"`.
    pub username: Option<Secret>,
    /// The percent-decoded password of the userinfo, if non-empty and not `"***"`.
    pub password: Option<Secret>,
}

impl ProxyUrl {
    /// Validates a trimmed, non-empty `proxy_url`. The reason never shows the URL (it may hold
    /// credentials).
    pub fn parse(text: &str) -> Result<Self, InvalidProxyUrl> {
        Self::parse_text(text).map_err(InvalidProxyUrl)
    }

    fn parse_text(text: &str) -> Result<Self, String> {
        let longest = crate::limits::MAX_PROXY_URL_WITH_CREDENTIALS_BYTES;
        if text.len() > longest {
            return Err(format!(
                "`{PROXY_URL}` is {} bytes long, more than the limit of {longest} bytes",
                text.len()
            ));
        }
        let url = Url::parse(text).map_err(|e| format!("`{PROXY_URL}` is not a valid proxy URL: {e}"))?;
        let scheme = url.scheme();
        if !PROXY_SCHEMES.contains(&scheme) {
            return Err(format!(
                "`{PROXY_URL}` scheme `{scheme}` is not a proxy scheme \
                 (expected http, https, socks4, socks4a, socks5 or socks5h)"
            ));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
            return Err(format!(
                "`{PROXY_URL}` contains whitespace, a control character or a backslash"
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{PROXY_URL}` has no host"));
        }
        if url.port_or_known_default().is_none() {
            return Err(format!(
                "`{PROXY_URL}` has no port (scheme `{scheme}` has no default port)"
            ));
        }
        if !matches!(url.path(), "" | "/") {
            return Err(format!("`{PROXY_URL}` has a path; expected only scheme://host:port"));
        }
        if url.query().is_some() {
            return Err(format!("`{PROXY_URL}` has a query; expected only scheme://host:port"));
        }
        if url.fragment().is_some() {
            return Err(format!(
                "`{PROXY_URL}` has a fragment; expected only scheme://host:port"
            ));
        }

        // Remove the userinfo from the text as written: the authority runs from "://" to the
        // first '/', '?' or '#'; the userinfo ends at its last '@' (as the URL standard reads it).
        let written_scheme = text
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .zip(text.get(scheme.len()..))
            .and_then(|(s, rest)| rest.strip_prefix("://").map(|rest| (s, rest)));
        let Some((written_scheme, rest)) = written_scheme else {
            return Err(format!("`{PROXY_URL}` must start with `{scheme}://`"));
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        // The url crate skips extra slashes after `http:` and `https:` (`http:///host`), but an
        // RFC 3986 reader (Python's urllib.parse, so proxywhirl) sees an empty authority there.
        if authority.is_empty() {
            return Err(format!(
                "`{PROXY_URL}` has no host after `{written_scheme}://` (an extra `/`?)"
            ));
        }
        let (had_userinfo, host_port) = match authority.rfind('@') {
            Some(at) => (true, authority.get(at + 1..).unwrap_or_default()),
            None => (false, authority),
        };
        let stored = format!("{written_scheme}://{host_port}{tail}");

        let url_has_userinfo = !url.username().is_empty() || url.password().is_some();
        let separated = if had_userinfo {
            Url::parse(&stored).is_ok_and(|check| {
                check.username().is_empty()
                    && check.password().is_none()
                    && check.host_str() == url.host_str()
                    && check.port_or_known_default() == url.port_or_known_default()
            })
        } else {
            !url_has_userinfo
        };
        if !separated {
            return Err(format!("`{PROXY_URL}` credentials could not be separated from the URL"));
        }

        let decode = |part: &str| {
            percent_decode_str(part)
                .decode_utf8()
                .map(std::borrow::Cow::into_owned)
                .map_err(|_| format!("`{PROXY_URL}` userinfo is not valid UTF-8 once percent-decoded"))
        };
        let keep = |value: String| {
            Some(value)
                .filter(|v| !v.is_empty() && v != CREDENTIAL_MASK)
                .map(Secret::new)
        };
        let username = keep(decode(url.username())?);
        let password = match url.password() {
            Some(password) => keep(decode(password)?),
            None => None,
        };
        Ok(Self {
            stored,
            username,
            password,
        })
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyUrl")
            .field("stored", &self.stored)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// Validates `proxy_url` to be stored as it is: a valid proxy URL ([`ProxyUrl::parse`]) with no
/// credentials in it.
///
/// # Errors
///
/// [`InvalidProxyUrl`] naming the rule the URL breaks (never showing the URL).
pub fn validate_proxy_url(proxy_url: &str) -> Result<(), InvalidProxyUrl> {
    let parsed = ProxyUrl::parse(proxy_url)?;
    if proxy_url.len() > crate::limits::MAX_PROXY_URL_BYTES {
        return Err(InvalidProxyUrl(format!(
            "`{PROXY_URL}` is {} bytes long, more than the limit of {} bytes",
            proxy_url.len(),
            crate::limits::MAX_PROXY_URL_BYTES
        )));
    }
    if parsed.stored != proxy_url || parsed.username.is_some() || parsed.password.is_some() {
        return Err(InvalidProxyUrl(format!(
            "`{PROXY_URL}` carries credentials (`scheme://user:pass@host`): they would be stored in \
             plaintext; give them as the username and password instead"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_to_store_as_they_are() {
        for ok in [
            "http://10.0.0.1:8080",
            "https://proxy.example.com",
            "socks5h://[::1]:1080/",
            "SOCKS5://Host.Example:1080",
        ] {
            validate_proxy_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("not a url", "is not a valid proxy URL"),
            ("ftp://10.0.0.1:21", "is not a proxy scheme"),
            ("http://10.0.0.1:8080/path", "has a path"),
            ("http://10.0.0.1:8080?q=1", "has a query"),
            ("http://10.0.0.1:8080#f", "has a fragment"),
            ("socks5://10.0.0.1", "has no port"),
            ("http:///10.0.0.1:8080", "has no host"),
            ("http://10.0.0.1:8080 ", "whitespace"),
            ("http://user:s3cret@10.0.0.1:8080", "carries credentials"),
            (&*format!("http://{}:80", "a".repeat(10 << 20)), "more than the limit"),
        ] {
            let err = validate_proxy_url(bad).unwrap_err().to_string();
            assert!(err.contains(why) && err.starts_with("`proxy_url`"), "{bad}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn credentials_are_split_off_and_decoded() {
        let url = ProxyUrl::parse("http://us%40er:p%3Ass@10.0.0.1:8080").unwrap();
        assert_eq!(url.stored, "http://10.0.0.1:8080");
        assert_eq!(url.username.as_ref().map(Secret::expose_secret), Some("us@er"));
        assert_eq!(url.password.as_ref().map(Secret::expose_secret), Some("p:ss"));
        assert!(!format!("{url:?}").contains("p:ss"));
        let masked = ProxyUrl::parse("http://***:***@10.0.0.1:8080").unwrap();
        assert!(masked.username.is_none() && masked.password.is_none());
        let err = ProxyUrl::parse("http://u:%FF@10.0.0.1:8080").unwrap_err();
        assert!(err.reason().contains("not valid UTF-8"), "{err}");
    }
}
