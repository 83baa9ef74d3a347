//! `cargo xtask bench`: builds the replay of proxywhirl's benchmark (`pw-cache-benches`, binary
//! `replay`) in release, runs it, and with `--vs-python` runs `bench_python.py` beside it and
//! prints the table of ratios. JSON records go to stdout (and `--out`), the table and progress
//! to stderr (and `--table`), so stdout stays one record per line.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pw_cache_benches::compare;
use pw_cache_cli::{Fatal, Outcome};

use crate::cli::BenchArgs;

/// The workspace root (xtask's parent directory).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn join_sizes(sizes: &[usize]) -> String {
    sizes.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

/// Runs `command`, copying each line of its stdout to ours and to `sink`; its text.
fn stream(mut command: Command, what: &str, sink: &mut Option<std::fs::File>) -> Result<String, Fatal> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Fatal(format!("cannot run {what}: {e}")))?;
    let mut text = String::new();
    if let Some(stdout) = child.stdout.take() {
        let mut ours = std::io::stdout().lock();
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| Fatal(format!("reading the output of {what}: {e}")))?;
            // A closed stdout (`| head`) must not stop the benchmark: the file still gets it.
            let _ = writeln!(ours, "{line}");
            let _ = ours.flush();
            if let Some(file) = sink.as_mut() {
                writeln!(file, "{line}").map_err(|e| Fatal(format!("writing --out: {e}")))?;
            }
            text.push_str(&line);
            text.push('\n');
        }
    }
    let status = child.wait().map_err(|e| Fatal(format!("waiting for {what}: {e}")))?;
    if !status.success() {
        return Err(Fatal(format!("{what} failed ({status})")));
    }
    Ok(text)
}

/// The reference's python, from `ref-venv.sh` beside `bench_python.py`; why not, when not.
fn reference_python(script: &Path) -> Result<PathBuf, String> {
    if !script.is_file() {
        return Err(format!("{} not found", script.display()));
    }
    let venv = script.with_file_name("ref-venv.sh");
    if !venv.is_file() {
        return Err(format!("{} not found", venv.display()));
    }
    let out = Command::new("bash")
        .arg(&venv)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", venv.display()))?;
    let python = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || python.is_empty() {
        return Err(format!(
            "{} could not make the reference venv ({})",
            venv.display(),
            out.status
        ));
    }
    Ok(PathBuf::from(python))
}

pub(crate) fn run(args: &BenchArgs) -> Result<Outcome, Fatal> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the replay (release)...");
    let built = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "pw-cache-benches",
            "--bin",
            "replay",
        ])
        .status()
        .map_err(|e| Fatal(format!("cannot run cargo: {e}")))?;
    if !built.success() {
        return Err(Fatal(format!("building the replay failed ({built})")));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let replay = target_dir.join("release").join("replay");

    let mut sink = match &args.out {
        Some(path) => {
            Some(std::fs::File::create(path).map_err(|e| Fatal(format!("cannot create {}: {e}", path.display())))?)
        }
        None => None,
    };

    let mut ours = Command::new(&replay);
    ours.arg("--sizes")
        .arg(join_sizes(&args.sizes))
        .arg("--big")
        .arg(join_sizes(&args.big))
        .arg("--dir")
        .arg(&args.dir)
        .arg("--cap")
        .arg(args.cap.to_string());
    if !args.only.is_empty() {
        ours.arg("--only").arg(args.only.join(","));
    }
    if args.redis {
        ours.arg("--redis");
    }
    eprintln!(
        "running pw-cache (sizes {}, big {})...",
        join_sizes(&args.sizes),
        join_sizes(&args.big)
    );
    let our_text = stream(ours, "the replay", &mut sink)?;
    if args.l1_memory > 0 {
        let n = args.l1_memory;
        let mut probe = Command::new(&replay);
        probe.arg("--l1-memory").arg(n.to_string());
        stream(probe, "the L1 memory probe", &mut sink)?;
    }

    if !args.vs_python {
        return Ok(Outcome::Done);
    }
    let script = args
        .python_bench
        .clone()
        .unwrap_or_else(|| root.join("../shared/bench/bench_python.py"));
    let python = match reference_python(&script) {
        Ok(python) => python,
        Err(why) => {
            eprintln!("--vs-python skipped: {why} (pass --python-bench PATH to bench_python.py)");
            return Ok(Outcome::Partial);
        }
    };
    let mut theirs = Command::new(&python);
    theirs
        .arg(&script)
        .arg("--sizes")
        .arg(join_sizes(&args.sizes))
        // The reference takes one big size; it cannot finish the larger ones anyway.
        .arg("--big")
        .arg(args.big.first().copied().unwrap_or(0).to_string())
        .arg("--dir")
        .arg(&args.dir)
        .arg("--cap")
        .arg(args.python_cap.to_string())
        .arg("--budget")
        .arg(args.python_budget.to_string());
    if !args.only.is_empty() {
        theirs.arg("--only").arg(args.only.join(","));
    }
    eprintln!("running proxywhirl 0.3.3 ({})...", python.display());
    let their_text = stream(theirs, "bench_python.py", &mut sink)?;

    let table = compare::render(&compare::join(
        &compare::parse_rates(&our_text),
        &compare::parse_rates(&their_text),
    ));
    eprintln!("\n{table}");
    if let Some(path) = &args.table {
        std::fs::write(path, &table).map_err(|e| Fatal(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(Outcome::Done)
}
