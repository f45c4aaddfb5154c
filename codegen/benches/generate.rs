//! Time to generate every provider's client in-process, against a baseline
//! measured in the same run: parsing the same YAML files into
//! `serde_yaml::Value`, the least any generation must do.
//!
//! `cargo bench -p paytokens-codegen --bench generate`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use paytokens_codegen::{Spec, generate, regen};

fn specs() -> Vec<(String, String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    regen::specs(&root)
        .expect("specs/ is readable")
        .into_iter()
        .map(|(id, file)| {
            let text = std::fs::read_to_string(root.join(&file)).expect("spec is readable");
            (id, file, text)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let specs = specs();
    assert!(!specs.is_empty(), "the bench covers every provider spec");
    let mut group = c.benchmark_group("every_spec");
    group.bench_function("baseline_yaml_parse", |b| {
        b.iter(|| {
            for (_, _, text) in &specs {
                black_box(serde_yaml::from_str::<serde_yaml::Value>(text).unwrap());
            }
        })
    });
    group.bench_function("generate", |b| {
        b.iter(|| {
            for (id, file, text) in &specs {
                let spec = Spec::parse(file, text).unwrap();
                black_box(generate(&spec, id).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
