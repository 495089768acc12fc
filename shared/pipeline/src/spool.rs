//! The disk spool: where batches wait while the database is unreachable.
//!
//! A spool is a folder of segment files named `<sequence>.seg`, replayed in sequence order.
//! Each segment is a run of frames ([`frame`]): length, CRC32, postcard payload. Every append
//! is fsynced before the batch counts as spooled; creating a segment fsyncs the folder, so a
//! crash never loses a spooled batch, at worst tears the frame being written. Reading stops at a
//! torn tail and skips a frame whose checksum fails; a segment with either is moved to
//! `quarantine/` once its good frames are replayed, for an operator to inspect.

pub mod frame;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use frame::SpooledBatch;

/// A segment is sealed and a new one started past this size.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
const QUARANTINE: &str = "quarantine";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding a spool frame: {0}")]
    Encode(#[from] postcard::Error),
    #[error("the spool is full ({used} of {max} bytes)")]
    Full { used: u64, max: u64 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What reading one segment found.
#[derive(Debug, Default)]
pub struct SegmentContents {
    pub batches: Vec<SpooledBatch>,
    /// Frames that failed their checksum or could not be decoded.
    pub corrupt_frames: u64,
    /// The segment ended in the middle of a frame.
    pub torn_tail: bool,
}

impl SegmentContents {
    pub fn damaged(&self) -> bool {
        self.corrupt_frames > 0 || self.torn_tail
    }
}

/// The spool folder. Appends go to the newest segment; replay reads sealed segments.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// The segment being appended to, and its size.
    current: Option<(PathBuf, File, u64)>,
    next_sequence: u64,
}

impl Spool {
    /// Opens (creating) the folder and finds where the sequence stands.
    ///
    /// # Errors
    /// [`SpoolError::Io`] when the folder cannot be created or read.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let next_sequence = segments(dir)?
            .last()
            .and_then(|p| sequence_of(p))
            .map_or(0, |s| s + 1);
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            current: None,
            next_sequence,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes in every segment (quarantined ones excluded).
    ///
    /// # Errors
    /// [`SpoolError::Io`].
    pub fn bytes(&self) -> Result<u64, SpoolError> {
        segments(&self.dir)?
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).map_err(io(p)))
            .sum()
    }

    /// Appends one batch and fsyncs it; returns the frame's size.
    ///
    /// # Errors
    /// [`SpoolError::Full`] when it would exceed the cap; [`SpoolError::Io`] on a write error.
    pub fn append(&mut self, batch: &SpooledBatch, used: u64) -> Result<u64, SpoolError> {
        let frame = frame::encode(batch)?;
        let size = frame.len() as u64;
        if used + size > self.max_bytes {
            return Err(SpoolError::Full {
                used,
                max: self.max_bytes,
            });
        }
        let rotate = self
            .current
            .as_ref()
            .is_none_or(|(_, _, len)| *len + size > SEGMENT_BYTES && *len > 0);
        if rotate {
            self.start_segment()?;
        }
        let (path, file, len) = self.current.as_mut().ok_or_else(|| SpoolError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other("no open segment"),
        })?;
        file.write_all(&frame).map_err(io(path))?;
        file.sync_data().map_err(io(path))?;
        *len += size;
        Ok(size)
    }

    fn start_segment(&mut self) -> Result<(), SpoolError> {
        let path = self.dir.join(format!("{:020}.seg", self.next_sequence));
        self.next_sequence += 1;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        // The new file's name must survive a crash too.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        self.current = Some((path, file, 0));
        Ok(())
    }

    /// Stops appending to the current segment, so every segment can be replayed.
    pub fn seal(&mut self) {
        self.current = None;
    }

    /// Sealed segments, oldest first.
    ///
    /// # Errors
    /// [`SpoolError::Io`].
    pub fn sealed_segments(&self) -> Result<Vec<PathBuf>, SpoolError> {
        let current = self.current.as_ref().map(|(p, _, _)| p.clone());
        Ok(segments(&self.dir)?
            .into_iter()
            .filter(|p| Some(p) != current.as_ref())
            .collect())
    }

    /// Moves a damaged segment aside.
    ///
    /// # Errors
    /// [`SpoolError::Io`].
    pub fn quarantine(&self, segment: &Path) -> Result<PathBuf, SpoolError> {
        let dir = self.dir.join(QUARANTINE);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let target = dir.join(segment.file_name().unwrap_or_default());
        std::fs::rename(segment, &target).map_err(io(segment))?;
        Ok(target)
    }

    /// Deletes a fully replayed segment.
    ///
    /// # Errors
    /// [`SpoolError::Io`].
    pub fn remove(&self, segment: &Path) -> Result<(), SpoolError> {
        std::fs::remove_file(segment).map_err(io(segment))
    }
}

/// Reads every frame of a segment; never fails on damaged content, only on I/O.
///
/// # Errors
/// [`SpoolError::Io`] when the file cannot be read.
pub fn read_segment(path: &Path) -> Result<SegmentContents, SpoolError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let mut contents = SegmentContents::default();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        match frame::decode(rest) {
            frame::Decoded::Frame { batch, consumed } => {
                contents.batches.push(batch);
                rest = &rest[consumed..];
            }
            frame::Decoded::Corrupt { consumed } => {
                contents.corrupt_frames += 1;
                rest = &rest[consumed..];
            }
            frame::Decoded::Torn => {
                contents.torn_tail = true;
                break;
            }
        }
    }
    Ok(contents)
}

fn segments(dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| sequence_of(p).is_some())
        .collect();
    found.sort_by_key(|p| sequence_of(p));
    Ok(found)
}

fn sequence_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".seg")?.parse().ok()
}

/// Whether a spooled batch is past the maximum age at `now_ms`.
pub fn expired(batch: &SpooledBatch, now_ms: i64, max_age: Duration) -> bool {
    let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(batch.spooled_at_ms) > max_age_ms
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::event::CallRow;

    pub(crate) fn batch(rows: usize) -> SpooledBatch {
        SpooledBatch {
            batch_id: Uuid::now_v7(),
            spooled_at_ms: 1_700_000_000_000,
            rows: (0..rows)
                .map(|i| CallRow {
                    id: Uuid::now_v7(),
                    organization_id: Uuid::nil(),
                    agent_id: None,
                    user_id: Some(Uuid::nil()),
                    method: "GET".into(),
                    endpoint: "/api/v1/agents".into(),
                    status_code: 200,
                    duration_ms: 1.5,
                    request_size_bytes: 0,
                    response_size_bytes: i64::try_from(i).unwrap_or(0),
                    user_agent: Some("k6".into()),
                    ip_address: Some("127.0.0.1".parse().expect("ip")),
                    error_message: None,
                    request_id: Some(format!("req-{i}")),
                    called_at_us: 1_700_000_000_000_000,
                })
                .collect(),
        }
    }

    #[test]
    fn appended_batches_read_back_in_order_across_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = Spool::open(dir.path(), u64::MAX).expect("open");
        let batches: Vec<_> = (0..3).map(|_| batch(5)).collect();
        let mut used = 0;
        for b in &batches {
            used += spool.append(b, used).expect("append");
            spool.seal(); // one segment per batch
        }
        assert_eq!(spool.bytes().expect("bytes"), used);
        let segments = spool.sealed_segments().expect("segments");
        assert_eq!(segments.len(), 3);
        let read: Vec<_> = segments
            .iter()
            .flat_map(|s| read_segment(s).expect("read").batches)
            .collect();
        assert_eq!(read, batches);

        // A reopened spool continues the sequence instead of overwriting.
        let mut reopened = Spool::open(dir.path(), u64::MAX).expect("reopen");
        reopened.append(&batch(1), 0).expect("append");
        reopened.seal();
        assert_eq!(reopened.sealed_segments().expect("segments").len(), 4);
    }

    #[test]
    fn the_cap_refuses_appends_beyond_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = Spool::open(dir.path(), 10).expect("open");
        assert!(matches!(
            spool.append(&batch(3), 0),
            Err(SpoolError::Full { .. })
        ));
    }

    #[test]
    fn a_corrupt_frame_is_skipped_and_a_torn_tail_stops_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = Spool::open(dir.path(), u64::MAX).expect("open");
        let (a, b, c) = (batch(2), batch(2), batch(2));
        let size_a = spool.append(&a, 0).expect("a");
        spool.append(&b, 0).expect("b");
        spool.append(&c, 0).expect("c");
        spool.seal();
        let path = spool.sealed_segments().expect("segments").remove(0);
        let mut bytes = std::fs::read(&path).expect("read");
        // Flip a payload byte of the second frame, and cut the third in half.
        let second_payload = usize::try_from(size_a).expect("size") + frame::HEADER_BYTES + 3;
        bytes[second_payload] ^= 0xff;
        bytes.truncate(bytes.len() - 7);
        std::fs::write(&path, bytes).expect("write");

        let contents = read_segment(&path).expect("read");
        assert_eq!(contents.batches, vec![a]);
        assert_eq!(contents.corrupt_frames, 1);
        assert!(contents.torn_tail);
        let moved = spool.quarantine(&path).expect("quarantine");
        assert!(moved.exists() && !path.exists());
        assert!(spool.sealed_segments().expect("segments").is_empty());
    }

    #[test]
    fn age_is_judged_against_the_maximum() {
        let b = batch(0);
        let day = Duration::from_secs(86_400);
        assert!(!expired(&b, b.spooled_at_ms + 1000, day));
        assert!(expired(&b, b.spooled_at_ms + 86_400_001, day));
    }
}
