//! Cache keys are the reference's: `sha256(proxy_url)[:16]`, checked against every key that
//! proxywhirl 0.3.3 generated in the fixtures.

use pw_cache::generate_cache_key;
use pw_cache_tests::manifest;

#[test]
fn generated_keys_match_the_manifest() {
    let manifest = manifest();
    let mut checked = 0;
    for warm in manifest["warm"].as_array().unwrap() {
        for e in warm["entries_in_l1_insertion_order"].as_array().unwrap() {
            let (key, url) = (e["key"].as_str().unwrap(), e["proxy_url"].as_str().unwrap());
            if e["key_is_generated"].as_bool().unwrap() {
                assert_eq!(generate_cache_key(url), key, "{url}");
                checked += 1;
            } else {
                assert_ne!(
                    generate_cache_key(url),
                    key,
                    "{url}: a custom key the manifest says is not generated"
                );
            }
        }
    }
    for (store, data) in manifest["stores"].as_object().unwrap() {
        for e in data["entries"].as_array().unwrap() {
            let notes = e["notes"].to_string();
            if notes.contains("custom (non-hash) key") || notes.contains("non-ascii key") {
                continue;
            }
            let (key, url) = (e["key"].as_str().unwrap(), e["proxy_url"].as_str().unwrap());
            assert_eq!(generate_cache_key(url), key, "{store}: {url}");
            checked += 1;
        }
    }
    assert!(checked > 500, "{checked}");
}

#[test]
fn keys_of_non_ascii_and_ipv6_urls_hash_their_utf8_bytes() {
    // Computed with Python: hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    assert_eq!(generate_cache_key("socks5://[2001:db8::1]:1080"), "df6f0f76981ab305");
    assert_eq!(generate_cache_key("http://прокси.example:8080"), "b742784c07227781");
}
