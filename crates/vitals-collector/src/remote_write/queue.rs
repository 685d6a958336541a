//! The on-disk queue of one receiver: each request body a file
//! (`<sequence>.req`, written to a temporary name, synced, renamed, the
//! folder synced), sent oldest first and deleted once the receiver took
//! it or refused it for good. Bounded by bytes: past the bound the oldest
//! requests are deleted and their samples counted as dropped. A restart
//! finds the files and goes on from the oldest.

use std::io::Write;
use std::path::{Path, PathBuf};

/// What a queued file starts with: format magic and version.
const MAGIC: &[u8; 4] = b"VRW1";

/// One queued request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Its file.
    pub path: PathBuf,
    /// The tenant header's value (empty: no header).
    pub tenant: String,
    /// Samples in the request.
    pub samples: u64,
    /// The request body (snappy-compressed protobuf).
    pub body: Vec<u8>,
}

/// A receiver's queue folder.
#[derive(Debug)]
pub struct Queue {
    dir: PathBuf,
    max_bytes: u64,
    next: u64,
}

/// Requests deleted to keep the queue within its bound.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    /// Requests deleted.
    pub requests: u64,
    /// Samples they carried.
    pub samples: u64,
}

impl Queue {
    /// Opens (creating it) the queue in `dir`, bounded to `max_bytes`.
    /// Left-over temporary files of an interrupted write are removed.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Queue> {
        std::fs::create_dir_all(dir)?;
        let mut next = 0;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("tmp") => std::fs::remove_file(&path)?,
                Some("req") => {
                    if let Some(n) = sequence(&path) {
                        next = next.max(n + 1);
                    }
                }
                _ => {}
            }
        }
        Ok(Queue {
            dir: dir.to_path_buf(),
            max_bytes,
            next,
        })
    }

    /// The queued files, oldest first, with their sizes.
    fn files(&self) -> std::io::Result<Vec<(u64, PathBuf, u64)>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("req") {
                continue;
            }
            if let Some(n) = sequence(&path) {
                files.push((n, path, entry.metadata()?.len()));
            }
        }
        files.sort();
        Ok(files)
    }

    /// Bytes and requests queued now.
    pub fn depth(&self) -> std::io::Result<(u64, u64)> {
        let files = self.files()?;
        Ok((files.iter().map(|f| f.2).sum(), files.len() as u64))
    }

    /// Appends one request durably; deletes the oldest ones first if the
    /// queue would pass its bound, and says what they held.
    pub fn push(&mut self, tenant: &str, samples: u64, body: &[u8]) -> std::io::Result<Evicted> {
        let mut data = Vec::with_capacity(body.len() + tenant.len() + 16);
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&(tenant.len() as u32).to_le_bytes());
        data.extend_from_slice(tenant.as_bytes());
        data.extend_from_slice(&samples.to_le_bytes());
        data.extend_from_slice(body);
        let mut evicted = Evicted::default();
        let files = self.files()?;
        let mut used: u64 = files.iter().map(|f| f.2).sum();
        for (_, path, size) in files {
            if used + data.len() as u64 <= self.max_bytes {
                break;
            }
            if let Ok(q) = read(&path) {
                evicted.samples += q.samples;
            }
            std::fs::remove_file(&path)?;
            evicted.requests += 1;
            used -= size;
        }
        let name = format!("{:020}", self.next);
        self.next += 1;
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(format!("{name}.req")))?;
        sync_dir(&self.dir)?;
        Ok(evicted)
    }

    /// The oldest queued request, if any. A file that cannot be read as
    /// one (damaged) is deleted and reported as `Err` once.
    pub fn oldest(&self) -> std::io::Result<Option<Queued>> {
        let Some((_, path, _)) = self.files()?.into_iter().next() else {
            return Ok(None);
        };
        match read(&path) {
            Ok(q) => Ok(Some(q)),
            Err(e) => {
                std::fs::remove_file(&path)?;
                Err(e)
            }
        }
    }

    /// Deletes a request that was sent (or refused for good).
    pub fn remove(&self, q: &Queued) -> std::io::Result<()> {
        match std::fs::remove_file(&q.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn sequence(path: &Path) -> Option<u64> {
    path.file_stem()?.to_str()?.parse().ok()
}

fn read(path: &Path) -> std::io::Result<Queued> {
    let data = std::fs::read(path)?;
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not a queued remote-write request", path.display()),
        )
    };
    let rest = data.strip_prefix(MAGIC).ok_or_else(bad)?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len + 8 {
        return Err(bad());
    }
    let (tenant, rest) = rest.split_at(len);
    let (samples, body) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
    Ok(Queued {
        path: path.to_path_buf(),
        tenant: String::from_utf8(tenant.to_vec()).map_err(|_| bad())?,
        samples: u64::from_le_bytes(*samples),
        body: body.to_vec(),
    })
}

/// Makes a rename in `dir` durable (a no-op where folders cannot be opened).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::File::open(dir) {
        Ok(d) => d.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

/// Writes `data` to `path` atomically (temporary file, sync, rename).
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_survive_a_reopen_in_order_and_the_bound_evicts_the_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut q = Queue::open(dir.path(), 1 << 20).expect("open");
        q.push("acme", 3, b"one").expect("push");
        q.push("", 5, b"two").expect("push");
        drop(q);
        std::fs::write(dir.path().join("00000000000000000009.tmp"), b"half").expect("tmp");
        let mut q = Queue::open(dir.path(), 1 << 20).expect("reopen");
        let first = q.oldest().expect("read").expect("one queued");
        assert_eq!((first.tenant.as_str(), first.samples), ("acme", 3));
        assert_eq!(first.body, b"one");
        q.remove(&first).expect("remove");
        let second = q.oldest().expect("read").expect("two queued");
        assert_eq!(
            (second.tenant.as_str(), second.body.as_slice()),
            ("", &b"two"[..])
        );
        // New requests go after the old ones.
        q.push("x", 1, b"three").expect("push");
        q.remove(&second).expect("remove");
        assert_eq!(q.oldest().expect("read").expect("three").body, b"three");
        assert!(!dir.path().join("00000000000000000009.tmp").exists());
        // A bound of one request's size: each push evicts the one before.
        let small = tempfile::tempdir().expect("tempdir");
        let mut q = Queue::open(small.path(), 30).expect("open");
        assert_eq!(
            q.push("t", 7, b"0123456789").expect("push"),
            Evicted::default()
        );
        let ev = q.push("t", 2, b"abcdefghij").expect("push");
        assert_eq!(
            ev,
            Evicted {
                requests: 1,
                samples: 7
            }
        );
        assert_eq!(q.depth().expect("depth").1, 1);
        // A damaged file is dropped, not retried forever.
        std::fs::write(small.path().join("00000000000000000000.req"), b"junk").expect("junk");
        assert!(q.oldest().is_err());
        assert_eq!(q.oldest().expect("read").expect("left").samples, 2);
    }
}
