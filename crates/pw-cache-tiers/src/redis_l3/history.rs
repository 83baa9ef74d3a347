//! Health history: each entry's checks as JSON records in a Redis list (newest first, capped,
//! with the entry's expiry), written, read and pruned by scripts; the [`HealthHistory`] impl.

use pw_cache_model::OffsetDateTime;
use pw_cache_model::limits;
use pw_cache_model::timestamp::{from_unix_seconds, to_unix_seconds};

use crate::error::TierError;
use crate::health_history::{HealthCheck, HealthHistory, HealthRecord};

use super::codec::real;
use super::scripts::SCRIPTS;
use super::tier::RedisL3Tier;

/// Keys checked per history-pruning script.
const PRUNE_CHUNK: usize = 256;

/// A health-history record as stored, without its id (written before it by the script).
#[derive(serde::Serialize)]
struct CheckJson<'a> {
    proxy_key: &'a str,
    check_time: f64,
    status: &'a str,
    response_time_ms: Option<f64>,
    error_message: Option<&'a str>,
    check_url: &'a str,
}

/// A health-history record as read; numbers kept as their text, read with Rust's correctly
/// rounded parser.
#[derive(serde::Deserialize)]
struct CheckRead<'a> {
    id: i64,
    #[serde(borrow)]
    proxy_key: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    check_time: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    status: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    response_time_ms: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    error_message: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    check_url: std::borrow::Cow<'a, str>,
}

/// Reads one stored record of `proxy_key`'s history.
fn read_check(proxy_key: &str, item: &[u8]) -> Result<HealthRecord, TierError> {
    let corrupt = |what: String| TierError::Corrupt {
        key: proxy_key.to_owned(),
        reason: format!("health history record: {what}"),
    };
    let rec: CheckRead<'_> = serde_json::from_slice(item).map_err(|e| corrupt(e.to_string()))?;
    let id = rec.id;
    let corrupt = |what: String| TierError::Corrupt {
        key: proxy_key.to_owned(),
        reason: format!("health history record {id}: {what}"),
    };
    let number = |field: &str, raw: &serde_json::value::RawValue| -> Result<Option<f64>, TierError> {
        match raw.get() {
            "null" => Ok(None),
            text => text
                .parse::<f64>()
                .map(Some)
                .map_err(|_| corrupt(format!("{field} {text} is not a number"))),
        }
    };
    let check_time = number("check_time", rec.check_time)?.ok_or_else(|| corrupt("check_time is null".to_owned()))?;
    Ok(HealthRecord {
        id,
        check: HealthCheck {
            proxy_key: rec.proxy_key.into_owned(),
            check_time: from_unix_seconds(check_time).map_err(|e| corrupt(format!("check_time: {e}")))?,
            status: rec.status.parse().map_err(|e| corrupt(format!("status: {e}")))?,
            response_time_ms: match rec.response_time_ms {
                Some(raw) => number("response_time_ms", raw)?,
                None => None,
            },
            error_message: rec.error_message.map(std::borrow::Cow::into_owned),
            check_url: rec.check_url.into_owned(),
        },
    })
}

impl HealthHistory for RedisL3Tier {
    /// One script: checks the entry exists, takes an id, pushes the record, trims the list to
    /// the cap, gives it the entry's expiry, publishes `health`.
    fn record_health_check(&self, check: &HealthCheck) -> Result<i64, TierError> {
        self.health.record(|| {
            check.validate()?;
            let json = serde_json::to_string(&CheckJson {
                proxy_key: &check.proxy_key,
                check_time: to_unix_seconds(check.check_time),
                status: check.status.as_str(),
                response_time_ms: check.response_time_ms,
                error_message: check.error_message.as_deref(),
                check_url: &check.check_url,
            })
            .map_err(|e| TierError::InvalidEntry {
                key: check.proxy_key.clone(),
                reason: format!("cannot encode the check: {e}"),
            })?;
            let rest = json.strip_prefix('{').unwrap_or(&json);
            let cap = self.history_cap.to_string();
            let id: i64 = self.script(
                "record health check",
                &SCRIPTS.record_check,
                &[&check.proxy_key, &cap, rest],
            )?;
            if id < 0 {
                return Err(TierError::InvalidEntry {
                    key: check.proxy_key.clone(),
                    reason: "no cache entry has this key: health history belongs to an entry".to_owned(),
                });
            }
            Ok(id)
        })
    }

    fn health_history(&self, proxy_key: &str, limit: usize) -> Result<Vec<HealthRecord>, TierError> {
        self.health.record(|| {
            if limit == 0 {
                return Ok(Vec::new());
            }
            let name = self.names.history(proxy_key);
            let items: Vec<redis::Value> = self.run("read health history", Some(proxy_key), |c| {
                SCRIPTS
                    .read_history
                    .prepare_invoke()
                    .key(&name)
                    .arg(limits::MAX_HEALTH_RECORD_BYTES)
                    .invoke(c)
            })?;
            let mut records = items
                .iter()
                .map(|item| match item {
                    redis::Value::BulkString(item) => read_check(proxy_key, item),
                    redis::Value::Int(len) => Err(TierError::Corrupt {
                        key: proxy_key.to_owned(),
                        reason: format!(
                            "health history record: {len} bytes long, more than the limit of {} bytes",
                            limits::MAX_HEALTH_RECORD_BYTES
                        ),
                    }),
                    other => Err(TierError::Corrupt {
                        key: proxy_key.to_owned(),
                        reason: format!("health history record: not a string ({other:?})"),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?;
            records.sort_by(|a, b| b.check.check_time.cmp(&a.check.check_time).then(b.id.cmp(&a.id)));
            records.truncate(limit);
            Ok(records)
        })
    }

    /// One script per 256 entries.
    fn prune_health_history(&self, older_than: OffsetDateTime) -> Result<usize, TierError> {
        self.health.record(|| {
            let keys = self.list_keys()?;
            let older = real(to_unix_seconds(older_than));
            let mut pruned = 0;
            for chunk in keys.chunks(PRUNE_CHUNK) {
                let mut args: Vec<&str> = vec![&older];
                args.extend(chunk.iter().map(String::as_str));
                let n: i64 = self.script("prune health history", &SCRIPTS.prune_history, &args)?;
                pruned += usize::try_from(n).unwrap_or(0);
            }
            Ok(pruned)
        })
    }
}
