//! Manifests as users apply them: a YAML file (`shoal apply -f`, `/v1/apply`)
//! and a JSON body (PUT/POST). Whatever parses must be canonical: validating
//! it again (as a later PUT of the stored object does) must pass.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::manifest::{object_from_json, parse_manifests, validate_object};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(parsed) = parse_manifests(text)
    {
        for obj in parsed.objects {
            let mut again = obj.clone();
            if let Err(e) = validate_object(&mut again) {
                panic!("a parsed object fails validation: {e}\n{obj:?}");
            }
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = object_from_json(value);
    }
});
