//! The durable spool: events read from a device are on disk, fsync'd, before
//! they are uploaded, and leave the disk only once the API acknowledged them.
//!
//! Layout: `<dir>/<job id>/job.json` (what the job is and the next sequence
//! number to read from the device) and one `events-<first>-<last>.json` file
//! per chunk. Every file is written to a temporary name, fsync'd, renamed into
//! place, and the directory fsync'd, so a crash leaves either the old or the
//! new file, never a torn one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::protocol::DeviceEvent;

/// What a spooled job is and how far its device read has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: Uuid,
    pub device_id: Uuid,
    /// `key` (read a key's log) or `cylinder` (collect from a programming key).
    pub source: Source,
    /// The next event sequence number to ask the device for.
    pub next_seq: u64,
    /// True once the device said nothing follows.
    pub read_done: bool,
    #[serde(default)]
    pub lease_token: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    Key { marking: String },
    Cylinder { programming_key: String },
}

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// One spooled chunk, as handed out for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    path: PathBuf,
    pub events: Vec<DeviceEvent>,
}

impl Spool {
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Spool> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let spool = Spool { dir };
        spool.clean_temporaries()?;
        Ok(spool)
    }

    fn job_dir(&self, job_id: Uuid) -> PathBuf {
        self.dir.join(job_id.to_string())
    }

    /// Starts a job or returns the record a previous run left behind.
    pub fn begin(&self, record: JobRecord) -> io::Result<JobRecord> {
        if let Some(existing) = self.record(record.job_id)? {
            let updated = JobRecord {
                lease_token: record.lease_token,
                ..existing
            };
            self.save(&updated)?;
            return Ok(updated);
        }
        let dir = self.job_dir(record.job_id);
        fs::create_dir_all(&dir)?;
        sync_dir(&self.dir)?;
        self.save(&record)?;
        Ok(record)
    }

    pub fn record(&self, job_id: Uuid) -> io::Result<Option<JobRecord>> {
        match fs::read(self.job_dir(job_id).join("job.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every job a previous run left in the spool.
    pub fn jobs(&self) -> io::Result<Vec<JobRecord>> {
        let mut jobs = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Ok(id) = entry.file_name().to_string_lossy().parse::<Uuid>()
                && let Some(record) = self.record(id)?
            {
                jobs.push(record);
            }
        }
        Ok(jobs)
    }

    fn save(&self, record: &JobRecord) -> io::Result<()> {
        let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
        write_atomic(&self.job_dir(record.job_id), "job.json", &bytes)
    }

    /// Stores a chunk durably, then advances the job's read position.
    pub fn append(
        &self,
        job_id: Uuid,
        events: &[DeviceEvent],
        done: bool,
    ) -> io::Result<JobRecord> {
        let mut record = self
            .record(job_id)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "job not in the spool"))?;
        if let (Some(first), Some(last)) = (events.first(), events.last()) {
            let bytes = serde_json::to_vec(events).map_err(io::Error::other)?;
            let name = format!("events-{:020}-{:020}.json", first.seq, last.seq);
            write_atomic(&self.job_dir(job_id), &name, &bytes)?;
            record.next_seq = record.next_seq.max(last.seq + 1);
        }
        record.read_done = done;
        self.save(&record)?;
        Ok(record)
    }

    /// Spooled chunks not yet acknowledged, oldest first.
    pub fn pending(&self, job_id: Uuid) -> io::Result<Vec<Batch>> {
        let dir = self.job_dir(job_id);
        let mut names: Vec<PathBuf> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("events-") && n.ends_with(".json"))
                })
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        names.sort();
        names
            .into_iter()
            .map(|path| {
                let events = serde_json::from_slice(&fs::read(&path)?).map_err(io::Error::other)?;
                Ok(Batch { path, events })
            })
            .collect()
    }

    /// The API stored this batch: forget it.
    pub fn acknowledge(&self, batch: &Batch) -> io::Result<()> {
        match fs::remove_file(&batch.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(dir) = batch.path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// The job is finished with the API: drop it, events and all.
    pub fn finish(&self, job_id: Uuid) -> io::Result<()> {
        match fs::remove_dir_all(self.job_dir(job_id)) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn clean_temporaries(&self) -> io::Result<()> {
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.is_dir() {
                for file in fs::read_dir(&path)? {
                    let file = file?.path();
                    if file.extension().is_some_and(|e| e == "tmp") {
                        fs::remove_file(file)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
