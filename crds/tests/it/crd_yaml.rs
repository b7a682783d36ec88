use std::path::PathBuf;

/// The checked-in CRD YAML must be exactly what the types generate.
/// To refresh it: `cargo run -p llmpool-operator -- crd --write crds/yaml`.
#[test]
fn checked_in_crds_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("yaml");
    for (file, generated) in llmpool_crds::crd::crd_files().unwrap() {
        let on_disk = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            on_disk == generated,
            "crds/yaml/{file} is out of date; run `cargo run -p llmpool-operator -- crd --write crds/yaml`"
        );
    }
}

#[test]
fn crds_carry_short_names_printer_columns_and_constraints() {
    let all = llmpool_crds::crd::crds_yaml().unwrap();
    for needle in [
        "shortNames:\n    - llma",
        "shortNames:\n    - mroute",
        "jsonPath: .spec.provider",
        "jsonPath: .status.targets",
        "subresources:\n      status: {}",
        "- openai-compatible",
        "- fill-first",
        "minimum: 1",
        "pattern: ^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$",
    ] {
        assert!(all.contains(needle), "CRD YAML lacks `{needle}`");
    }
    // cross-field rules the API server enforces at `kubectl apply`
    for rule in [
        "rule: has(self.secretRef) != has(self.oauth)",
        "rule: self.provider != 'openai-compatible' || has(self.baseUrl)",
        "rule: self.provider == 'openai-compatible' || has(self.credentials)",
        "rule: (has(self.names) && size(self.names) > 0) || has(self.selector)",
        "duration(self.default) <= duration(self.max)",
    ] {
        assert!(all.contains(rule), "CRD YAML lacks the CEL rule `{rule}`");
    }
    // bounds keep the CEL cost estimate within the API server's budget
    assert!(all.contains("maxItems: 16") && all.contains("maxLength: 32"));
    // field docs become `kubectl explain` descriptions
    assert!(all.contains("Accounts with the same projectId share cooldowns"));
}
