//! Resource YAML as a user would `kubectl apply` it (local mode reads the
//! same files): parsed, compiled, rendered into the ConfigMap and Secret the
//! proxies read, and read back.
//!
//! Besides "no panic": what is rendered reads back to the same table, keys
//! and clients, and no Secret value reaches a diagnostic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use llmpool_crds::manifest::Resources;
use llmpool_crds::objects;

const MARKER: &str = "secret-value-marker-";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut resources = Resources::default();
    resources.add_yaml(text, "fuzz.yaml");
    let compiled = resources.compile();

    // every Secret value replaced by a marker that appears nowhere else:
    // whatever compile() says about the resources must not hold one
    if !text.contains(MARKER) {
        let mut marked = resources.clone();
        for (i, secret) in marked.secrets.iter_mut().enumerate() {
            for (j, value) in secret.data.iter_mut().flatten().enumerate() {
                value.1.0 = format!("{MARKER}{i}.{j}").into_bytes();
            }
            for (j, value) in secret.string_data.iter_mut().flatten().enumerate() {
                *value.1 = format!("{MARKER}{i}.s{j}");
            }
        }
        for d in &marked.compile().diagnostics {
            let all = format!("{} {} {} {}", d.kind, d.name, d.field, d.message);
            assert!(!all.contains(MARKER), "a Secret value in: {all}");
        }
    }

    let Ok(rendered) = objects::render(
        "fuzz",
        "default",
        &compiled.table,
        &compiled.credentials,
        &compiled.clients,
    ) else {
        return;
    };
    let back = objects::read(&rendered.configmap, &rendered.secret).expect("reads back");
    assert!(back.table == compiled.table, "table changed on the way");
    assert!(
        back.credentials == compiled.credentials,
        "keys changed on the way"
    );
    assert!(
        back.clients == compiled.clients,
        "clients changed on the way"
    );
});
