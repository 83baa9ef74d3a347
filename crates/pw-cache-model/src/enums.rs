//! The small enums of the model, each written on the wire as the reference's lowercase string.

use std::fmt;
use std::str::FromStr;

/// A string that names none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: expected one of {expected}")]
pub struct ParseEnumError {
    /// What was being parsed, e.g. `eviction policy`.
    pub kind: &'static str,
    /// The text that was given (cut to 64 characters).
    pub value: String,
    /// The accepted spellings, comma separated.
    pub expected: &'static str,
}

/// Declares a fieldless enum with its wire strings: `as_str`, `Display`, `FromStr` (exact
/// spelling, or ASCII case-insensitive for `case_insensitive`), `ALL`, and serde as the string.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal, case_insensitive = $ci:literal,
        { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "std::borrow::Cow<'_, str>", into = "&'static str")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| if $ci { v.as_str().eq_ignore_ascii_case(s.trim()) } else { v.as_str() == s })
                    .ok_or_else(|| ParseEnumError {
                        kind: $kind,
                        value: s.chars().take(64).collect(),
                        expected: concat!($($text, ", "),+).trim_end_matches(", "),
                    })
            }
        }

        impl TryFrom<std::borrow::Cow<'_, str>> for $name {
            type Error = ParseEnumError;

            fn try_from(s: std::borrow::Cow<'_, str>) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for &'static str {
            fn from(v: $name) -> Self {
                v.as_str()
            }
        }
    };
}

wire_enum! {
    /// Health of a proxy, as the reference's `proxywhirl.models.HealthStatus`. Read strictly
    /// (exact lowercase), as it comes from files.
    #[derive(Default)]
    HealthStatus, "health status", case_insensitive = false, {
        /// Never checked.
        #[default]
        Unknown = "unknown",
        /// Passed its checks.
        Healthy = "healthy",
        /// Works, with failures or slowness.
        Degraded = "degraded",
        /// Failing its checks.
        Unhealthy = "unhealthy",
        /// Given up on.
        Dead = "dead",
    }
}

wire_enum! {
    /// One of the three cache levels.
    CacheTierType, "cache tier", case_insensitive = false, {
        /// Memory.
        L1 = "l1",
        /// Disk: JSONL shards or SQLite.
        L2 = "l2",
        /// SQLite with health history.
        L3 = "l3",
    }
}

wire_enum! {
    /// Which backend holds L2.
    #[derive(Default)]
    L2BackendType, "L2 backend", case_insensitive = true, {
        /// 16 sharded JSON Lines files (the reference's default).
        #[default]
        Jsonl = "jsonl",
        /// One SQLite database, `l2_cache.db`.
        Sqlite = "sqlite",
    }
}

wire_enum! {
    /// Which backend holds L3.
    #[derive(Default)]
    L3BackendType, "L3 backend", case_insensitive = true, {
        /// One SQLite database with health history (the reference's).
        #[default]
        Sqlite = "sqlite",
        /// A Redis server shared by several hosts (cargo feature `redis` of `pw-cache`).
        Redis = "redis",
    }
}

wire_enum! {
    /// Which entry a full tier evicts. Parsed case-insensitively (`"LRU"` is `lru`); anything
    /// else is a [`ParseEnumError`] that lists the accepted values.
    #[derive(Default)]
    EvictionPolicy, "eviction policy", case_insensitive = true, {
        /// Least recently used.
        #[default]
        Lru = "lru",
        /// Least frequently used (ties broken by recency).
        Lfu = "lfu",
        /// First in, first out.
        Fifo = "fifo",
    }
}

impl HealthStatus {
    /// Whether a proxy in this state may be handed out as healthy (only [`HealthStatus::Healthy`]).
    pub const fn is_healthy(self) -> bool {
        matches!(self, HealthStatus::Healthy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_value() {
        for v in HealthStatus::ALL {
            assert_eq!(v.as_str().parse::<HealthStatus>().unwrap(), *v);
            assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{v}\""));
            assert_eq!(serde_json::from_str::<HealthStatus>(&format!("\"{v}\"")).unwrap(), *v);
        }
        for v in EvictionPolicy::ALL {
            assert_eq!(v.as_str().to_uppercase().parse::<EvictionPolicy>().unwrap(), *v);
        }
        assert_eq!("sqlite".parse::<L2BackendType>().unwrap(), L2BackendType::Sqlite);
        assert_eq!(L2BackendType::default(), L2BackendType::Jsonl);
        assert_eq!("l3".parse::<CacheTierType>().unwrap(), CacheTierType::L3);
    }

    #[test]
    fn rejects_unknown_with_the_accepted_list() {
        let err = "random".parse::<EvictionPolicy>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid eviction policy \"random\": expected one of lru, lfu, fifo"
        );
        let err = serde_json::from_str::<HealthStatus>("\"HEALTHY\"").unwrap_err();
        assert!(err.to_string().contains("invalid health status \"HEALTHY\""), "{err}");
    }
}
