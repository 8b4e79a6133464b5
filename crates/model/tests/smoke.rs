//! A tiny model trained for a few steps on real Fashion-MNIST: the whole pipeline (three training
//! stages, save, load, layered encoding, decoding of every prefix) runs and is consistent.

use std::path::Path;

use offload_model::data::DEFAULT_FASHION_MNIST_DIR;
use offload_model::eval::evaluate;
use offload_model::finetune::{FineTuneConfig, fine_tune_decoders};
use offload_model::save::{SaveInfo, Stage1, save_model, train_and_save_from};
use offload_model::train::{TrainConfig, train, train_after_stage1};
use offload_model::{Dataset, ModelConfig, ModelError, Split, SplitModel};

#[test]
fn tiny_model_trains_saves_loads_and_round_trips() {
    let dir = Path::new(DEFAULT_FASHION_MNIST_DIR);
    let train_set = Dataset::load(dir, Split::Train).unwrap().take(2048);
    let test_set = Dataset::load(dir, Split::Test).unwrap().take(64);
    let config = ModelConfig::tiny();
    let recipe = TrainConfig::tiny();
    let mut losses = Vec::new();
    let trained = train(&config, &recipe, &train_set, |s| {
        losses.push((s.stage, s.loss))
    })
    .unwrap();
    assert!(losses.iter().all(|(_, l)| l.is_finite()), "{losses:?}");
    assert_eq!(losses.last().map(|l| l.0), Some(3));

    let out = tempfile::tempdir().unwrap();
    let model = save_model(
        out.path(),
        &trained,
        SaveInfo {
            name: "tiny".into(),
            training: Some(recipe),
            evaluation: None,
            training_time_s: None,
        },
    )
    .unwrap();
    // The loaded model computes what the trained one does.
    let before = evaluate(&trained.network, &test_set, 32).unwrap();
    let after = evaluate(model.network(), &test_set, 32).unwrap();
    assert_eq!(before, after);
    assert_eq!(before.accuracy.len(), config.num_layers());

    // Every prefix of every frame decodes to exactly the symbols the device quantised.
    for i in 0..8 {
        let image = test_set.image(i);
        let features = model.encode_features(image).unwrap();
        let symbols = model
            .quantise_layers(&features, model.num_layers())
            .unwrap();
        let frame = model.code_layers(&symbols, i as u64).unwrap();
        for k in 1..=model.num_layers() {
            let (decoded, _) = model
                .decode_symbols(&frame.header, &frame.records[..k])
                .unwrap();
            assert_eq!(decoded[..], symbols[..k], "frame {i}, {k} layers");
            let probs = model
                .server_decode(&frame.header, &frame.records[..k])
                .unwrap();
            assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
        let local = model.local_infer(image).unwrap();
        assert_eq!(local.len(), 10);
    }

    // Decoder fine-tuning leaves every coded symbol alone and records what it started from.
    let tuned_dir = tempfile::tempdir().unwrap();
    let tune = FineTuneConfig {
        seed: 1,
        validation_images: 256,
        fit_images: Some(512),
        batch_size: 32,
        steps: 6,
        learning_rate: 1e-3,
        low_min_layers: 1,
        low_max_layers: 2,
        high_min_layers: 2,
        fixed_low_rate_layers: None,
        train_expansions: true,
        inference_batch_norm: true,
    };
    let mut lines = Vec::new();
    let tuned = fine_tune_decoders(
        out.path(),
        tuned_dir.path(),
        &train_set,
        &test_set,
        &tune,
        |l| lines.push(l.to_owned()),
    )
    .unwrap();
    assert!(lines.iter().any(|l| l.starts_with("step 6/6")), "{lines:?}");
    assert_ne!(tuned.model_id(), model.model_id());
    let tuning = tuned.manifest().fine_tuning.clone().unwrap();
    assert_eq!(tuning.base_weights_sha256, model.manifest().weights_sha256);
    assert_eq!(tuning.validation_low.len(), config.num_layers());
    assert!((1..=config.num_layers()).contains(&tuning.low_rate_layers));
    // With the decoders' batch norms in inference form, their running statistics (what the
    // server normalises with) are left as they were, while the weights move.
    let tensors = |dir: &Path| {
        candle_core::safetensors::load(dir.join("weights.safetensors"), &candle_core::Device::Cpu)
            .unwrap()
    };
    let (base, after) = (tensors(out.path()), tensors(tuned_dir.path()));
    let values = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut running = 0;
    for (name, t) in &base {
        if name.starts_with("decoders.") && name.contains("running_") {
            assert_eq!(values(t), values(&after[name]), "{name}");
            running += 1;
        }
    }
    assert!(running > 0);
    let head = "decoders.high.head.weight";
    assert_ne!(values(&base[head]), values(&after[head]));
    for i in 0..4 {
        let image = test_set.image(i);
        let n = model.num_layers();
        let before = model
            .quantise_layers(&model.encode_features(image).unwrap(), n)
            .unwrap();
        let after = tuned
            .quantise_layers(&tuned.encode_features(image).unwrap(), n)
            .unwrap();
        assert_eq!(
            before, after,
            "frame {i}: fine-tuning changed the coded symbols"
        );
    }
    let bad = FineTuneConfig {
        validation_images: train_set.len(),
        ..tune.clone()
    };
    let err = fine_tune_decoders(
        out.path(),
        tuned_dir.path(),
        &train_set,
        &test_set,
        &bad,
        |_| {},
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("validation_images"), "{err}");
    let too_many = FineTuneConfig {
        fit_images: Some(train_set.len()),
        ..tune
    };
    let err = fine_tune_decoders(
        out.path(),
        tuned_dir.path(),
        &train_set,
        &test_set,
        &too_many,
        |_| {},
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("fit_images"), "{err}");

    // A baseline's single decoder: only the low-rate decoder moves, on k = N only for a
    // single-rate model, and the switch point stays where the baseline put it.
    let n = config.num_layers();
    let single = FineTuneConfig {
        validation_images: 256,
        fit_images: Some(512),
        batch_size: 32,
        steps: 6,
        ..FineTuneConfig::one_decoder(n, false)
    };
    let single_dir = tempfile::tempdir().unwrap();
    let one = fine_tune_decoders(
        out.path(),
        single_dir.path(),
        &train_set,
        &test_set,
        &single,
        |_| {},
    )
    .unwrap();
    assert_eq!(one.manifest().architecture.low_rate_layers, n);
    let after = tensors(single_dir.path());
    assert_eq!(values(&base[head]), values(&after[head]));
    let low_head = "decoders.low.head.weight";
    assert_ne!(values(&base[low_head]), values(&after[low_head]));
    let out_of_range = FineTuneConfig {
        high_min_layers: n + 2,
        ..single
    };
    let err = fine_tune_decoders(
        out.path(),
        single_dir.path(),
        &train_set,
        &test_set,
        &out_of_range,
        |_| {},
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("decoder layer ranges"), "{err}");

    // A frame from another model is refused; a corrupt weights file is named in the error.
    let reloaded = SplitModel::load(out.path()).unwrap();
    assert_eq!(reloaded.model_id(), model.model_id());
    let weights = out.path().join("weights.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&weights, &bytes).unwrap();
    match SplitModel::load(out.path()) {
        Err(ModelError::Weights { path, .. }) => assert_eq!(path, weights),
        other => panic!("expected a weights error, got {other:?}"),
    }
    std::fs::write(out.path().join("model.json"), b"{\"format\": 3}").unwrap();
    let err = SplitModel::load(out.path()).unwrap_err();
    assert!(matches!(err, ModelError::Manifest { .. }), "{err}");
    assert!(err.to_string().contains("model.json"));
}

/// Stage 2 resumed from a saved stage 1 starts from that run's encoder and local decoder, and
/// with the encoder's stage-2 learning rate at 0 leaves the encoder as stage 1 trained it.
#[test]
fn stage_two_resumes_from_saved_stage_one_and_can_freeze_the_encoder() {
    let dir = Path::new(DEFAULT_FASHION_MNIST_DIR);
    let train_set = Dataset::load(dir, Split::Train).unwrap().take(1024);
    let config = ModelConfig::tiny();
    let mut recipe = TrainConfig::tiny();
    recipe.stage_images = [256, 0, 0];
    let stage1 = train(&config, &recipe, &train_set, |_| {}).unwrap();
    let out = tempfile::tempdir().unwrap();
    let weights = out.path().join("stage1.safetensors");
    stage1.vars.save(&weights).unwrap();
    let encoder = |vars: &candle_nn::VarMap| -> Vec<(String, Vec<f32>)> {
        let data = vars.data().lock().unwrap();
        let mut v: Vec<_> = data
            .iter()
            .filter(|(k, _)| k.starts_with("encoder.") && !k.contains("running_"))
            .map(|(k, t)| {
                let values = t.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
                (k.clone(), values)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };

    recipe.stage_images = [0, 128, 0];
    recipe.stage2_local_weight = 3.0;
    recipe.stage2_encoder_lr_scale = 0.0;
    let mut losses = Vec::new();
    let frozen = train_after_stage1(&config, &recipe, &train_set, &weights, |s| {
        losses.push((s.stage, s.loss))
    })
    .unwrap();
    assert!(!encoder(&stage1.vars).is_empty());
    assert_eq!(encoder(&frozen.vars), encoder(&stage1.vars));
    assert!(
        losses.iter().all(|(stage, l)| *stage == 2 && l.is_finite()),
        "{losses:?}"
    );

    recipe.stage2_encoder_lr_scale = 0.5;
    let moved = train_after_stage1(&config, &recipe, &train_set, &weights, |_| {}).unwrap();
    assert_ne!(encoder(&moved.vars), encoder(&stage1.vars));
}

#[test]
fn saved_stage_one_is_what_a_later_run_starts_from() {
    let dir = Path::new(DEFAULT_FASHION_MNIST_DIR);
    let config = ModelConfig::tiny();
    let mut recipe = TrainConfig::tiny();
    recipe.stage_images = [256, 128, 0];
    let out = tempfile::tempdir().unwrap();
    let stage1 = out.path().join("stage1").join("weights.safetensors");
    let (saved_run, _) = train_and_save_from(
        dir,
        &out.path().join("a"),
        "tiny",
        &config,
        &recipe,
        &Stage1::TrainAndSave(stage1.clone()),
        |_| {},
    )
    .unwrap();
    let (loaded_run, _) = train_and_save_from(
        dir,
        &out.path().join("b"),
        "tiny",
        &config,
        &recipe,
        &Stage1::Load(stage1.clone()),
        |_| {},
    )
    .unwrap();
    let tensors =
        |path: &Path| candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap();
    let values = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let saved = tensors(&stage1);
    let (a, b) = (
        tensors(&out.path().join("a").join("weights.safetensors")),
        tensors(&out.path().join("b").join("weights.safetensors")),
    );
    // The run that saved stage 1 went on from the file exactly as the run that loaded it (the
    // model ids differ: the manifest records each run's training time).
    assert_eq!(
        saved_run.manifest().weights_sha256,
        loaded_run.manifest().weights_sha256
    );
    let mut compared = 0;
    for (name, t) in &a {
        assert_eq!(values(t), values(&b[name]), "{name}");
        compared += 1;
    }
    assert!(compared > 0);
    // Stage 2 trained on from the saved encoder (it is not frozen in the tiny recipe).
    let name = saved
        .keys()
        .find(|k| k.starts_with("encoder.") && k.ends_with("weight"))
        .unwrap();
    assert_ne!(values(&saved[name]), values(&a[name]));

    let missing = train_and_save_from(
        dir,
        &out.path().join("c"),
        "tiny",
        &config,
        &recipe,
        &Stage1::Load(out.path().join("none.safetensors")),
        |_| {},
    );
    assert!(missing.is_err());
}
