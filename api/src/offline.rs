//! `countersign history verify`: checks an exported chain with no server and
//! no database, by the same rule the server applies (the domain's
//! [`ChainWalk`]) and the same hashing and signatures (`infra`).

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, bail};
use countersign_domain::history::checkpoint::{SIGNING_INTERVAL, UNSIGNED_GRACE};
use countersign_domain::history::{ChainWalk, Checkpoint, Verification};
use countersign_infra::history::ChainKeys;
use countersign_infra::signing::HistoryPublicKey;
use serde_json::Value;

use crate::routes::history::ExportLine;

/// A value given on the command line, or the contents of the file it names.
fn value_or_file(arg: &str) -> anyhow::Result<String> {
    let path = Path::new(arg);
    if !arg.trim_start().starts_with(['{', '[']) && path.is_file() {
        return std::fs::read_to_string(path).with_context(|| format!("reading {arg}"));
    }
    Ok(arg.to_owned())
}

/// Checkpoints in a `--checkpoint`: one checkpoint, a list of them, or a
/// body of `POST /v1/history/verify` (the line of the auditors' mail).
fn checkpoints_of(arg: &str) -> anyhow::Result<Vec<Checkpoint>> {
    let text = value_or_file(arg)?;
    let value: Value = serde_json::from_str(text.trim())
        .with_context(|| format!("--checkpoint `{arg}` is not JSON"))?;
    let list = match value {
        Value::Object(mut o) if o.contains_key("checkpoints") => o.remove("checkpoints"),
        Value::Array(a) => Some(Value::Array(a)),
        other => Some(Value::Array(vec![other])),
    };
    serde_json::from_value(list.unwrap_or_default())
        .with_context(|| format!("--checkpoint `{arg}` holds no checkpoints"))
}

/// The export's `export` line and its checkpoints (a first pass: checkpoints
/// go to the walk before the entries they name).
fn first_pass(file: &Path) -> anyhow::Result<(ExportLine, Vec<Checkpoint>)> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
    );
    let mut header = None;
    let mut checkpoints = Vec::new();
    for (n, text) in reader.lines().enumerate() {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        let line: ExportLine = serde_json::from_str(&text)
            .with_context(|| format!("line {} is not a line of a history export", n + 1))?;
        match line {
            ExportLine::Export { .. } if n == 0 => header = Some(line),
            ExportLine::Export { .. } => bail!("line {}: a second export line", n + 1),
            ExportLine::Checkpoint(c) => checkpoints.push(c),
            ExportLine::Entry(_) => {}
        }
    }
    let header = header.context("the first line is not the export line")?;
    Ok((header, checkpoints))
}

/// Verifies the export in `file` with `keys` (base64 or PEM, or files of
/// them) and the kept `checkpoints`.
pub fn verify_export(
    file: &Path,
    keys: &[String],
    checkpoints: &[String],
) -> anyhow::Result<Verification> {
    let keys = keys
        .iter()
        .map(|k| {
            HistoryPublicKey::parse(&value_or_file(k)?)
                .with_context(|| format!("--public-key `{k}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (header, in_file) = first_pass(file)?;
    let ExportLine::Export {
        tenant_id,
        exported_at,
        through_seq,
        head_hash,
        ..
    } = header
    else {
        bail!("the first line is not the export line");
    };
    let mut kept = Vec::new();
    for arg in checkpoints {
        for c in checkpoints_of(arg)? {
            if c.tenant_id != tenant_id {
                bail!(
                    "--checkpoint `{arg}` is of tenant {}, the export of {tenant_id}",
                    c.tenant_id
                );
            }
            kept.push(c);
        }
    }
    let crypto = ChainKeys::new(keys.iter());
    let mut walk = ChainWalk::new(tenant_id, &crypto);
    walk.checkpoints(in_file.into_iter().chain(kept));
    let reader = std::io::BufReader::new(std::fs::File::open(file)?);
    for text in reader.lines() {
        let text = text?;
        if text.trim().is_empty() {
            continue;
        }
        if let ExportLine::Entry(entry) = serde_json::from_str(&text)? {
            walk.entry(&entry.into())?;
        }
    }
    let limit = chrono::Duration::from_std(SIGNING_INTERVAL + UNSIGNED_GRACE)?;
    Ok(walk.finish(Some((through_seq, &head_hash)), Some(exported_at - limit)))
}

/// The result for a person, one problem per line.
pub fn describe(v: &Verification) -> String {
    let mut text = if v.valid {
        format!(
            "valid: {} entries, {} checkpoints checked, signed through entry {}\n",
            v.entries_checked,
            v.signatures_checked,
            v.last_signed_seq
                .map_or("none".to_owned(), |s| s.to_string())
        )
    } else {
        format!(
            "NOT VALID ({}): {}\n",
            v.status.as_str(),
            v.reason.as_deref().unwrap_or_default()
        )
    };
    if !v.valid {
        for p in &v.problems {
            let seq = p.first_broken_seq.map_or("-".to_owned(), |s| s.to_string());
            text.push_str(&format!(
                "  {} from entry {seq}: {}\n",
                p.status.as_str(),
                p.reason
            ));
        }
        text.push_str(&format!(
            "{} entries and {} checkpoints checked; intact through entry {}\n",
            v.entries_checked,
            v.signatures_checked,
            v.last_signed_seq
                .map_or("none".to_owned(), |s| s.to_string())
        ));
    }
    text
}
