//! The quickstart: what pw-cache does with the embedded default configuration.
//!
//! Run with `cargo run -p pw-cache --example quickstart`. It writes nothing to disk.

use pw_cache::{CacheConfig, CacheEntry, CacheStatistics, FernetKey, KeyRing, Secret, generate_cache_key};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = CacheConfig::default();
    println!("embedded default configuration (the key, if any, is masked):");
    println!("{}", serde_json::to_string_pretty(&config)?);

    let url = "http://10.0.0.1:8080";
    let entry = CacheEntry::new(url, "fetched", config.ttl_for_source("fetched"))?
        .with_credentials(Some(Secret::new("user")), Some(Secret::new("not-printed")));
    println!("\ncache key of {url:?}: {}", generate_cache_key(url));
    println!("entry as the reference exports it (credentials masked):");
    println!("{}", entry.to_json_line());
    println!("expired now? {}  healthy? {}", entry.is_expired(), entry.is_healthy());

    // At rest, credentials are Fernet tokens (here under a throwaway key: nothing is written).
    let ring = KeyRing::new(FernetKey::generate(), []);
    let token = ring.encrypt(entry.password.as_ref().ok_or("no password")?);
    let back = ring.decrypt(&token)?;
    println!(
        "\npassword at rest: {token:?}; decrypts back: {}",
        back == *entry.password.as_ref().ok_or("no password")?
    );

    let stats = CacheStatistics::default();
    println!("\nmetrics of an empty cache:");
    for (name, value) in stats.to_metrics_dict() {
        println!("  {name:<24} {value}");
    }
    Ok(())
}
