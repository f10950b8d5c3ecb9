//! The `crossfire` binary with the embedded model: tokenizing, and a missing or corrupt
//! model file explained.

#[test]
fn the_cli_tokenizes_and_a_missing_or_corrupt_model_says_what_to_do() {
    let path = crossfire_embedded::fetch::default_path();
    crossfire_embedded::fetch::fetch(&path).expect("fetch the model");
    let crossfire = |path: Option<&std::path::Path>, args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_crossfire"));
        command.args(args).env_remove("CROSSFIRE_CONFIG");
        match path {
            Some(path) => command.env("CROSSFIRE_MODEL_PATH", path),
            None => command.env_remove("CROSSFIRE_MODEL_PATH"),
        };
        command.output().unwrap()
    };
    let out = crossfire(None, &["model", "tokenize", "Hello world <|im_end|>"]);
    assert!(out.status.success());
    let ids: Vec<u32> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids[..2], [19556, 905]);
    assert!(!ids.contains(&2), "user text never becomes a control token");

    let dir = std::env::temp_dir().join(format!("crossfire-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("absent.gguf");
    let out = crossfire(Some(&missing), &["model", "tokenize", "hi"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("missing") && err.contains("crossfire model fetch"),
        "{err}"
    );

    let corrupt = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::write(&corrupt, b"GGUF but not really").unwrap();
    let out = crossfire(
        Some(&corrupt),
        &[
            "debate",
            "--story",
            "fed-rate-cuts-2024",
            "--a",
            "adam-smith",
            "--b",
            "john-maynard-keynes",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("corrupt") && err.contains("crossfire model fetch"),
        "{err}"
    );

    let not_gguf = dir.join("other.gguf");
    std::fs::write(&not_gguf, b"hello").unwrap();
    let out = crossfire(Some(&not_gguf), &["model", "tokenize", "hi"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a GGUF file"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
