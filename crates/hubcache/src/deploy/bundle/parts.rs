//! Split bundles: writing one file or numbered parts under temporary names, naming the parts,
//! and reading them back as one stream.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::deploy::DeployError;

/// Name of part `index` of a split bundle (`<out>.000`, `<out>.001`, …).
pub fn part_name(out: &Path, index: usize) -> PathBuf {
    let mut name = out.as_os_str().to_os_string();
    name.push(format!(".{index:03}"));
    PathBuf::from(name)
}

/// Writes the bundle into one file or into parts of at most `limit` bytes, all under
/// temporary names until [`PartWriter::commit`].
pub(super) struct PartWriter {
    out: PathBuf,
    limit: Option<u64>,
    /// (temporary name, final name) of every part so far.
    parts: Vec<(PathBuf, PathBuf)>,
    current: Option<BufWriter<File>>,
    in_part: u64,
    total: u64,
}

impl PartWriter {
    pub(super) fn new(out: &Path, limit: Option<u64>) -> Result<Self, DeployError> {
        let limit = limit.filter(|l| *l > 0);
        let mut w = PartWriter {
            out: out.to_path_buf(),
            limit,
            parts: Vec::new(),
            current: None,
            in_part: 0,
            total: 0,
        };
        w.open_next()?;
        Ok(w)
    }

    fn open_next(&mut self) -> Result<(), DeployError> {
        let fin = match self.limit {
            Some(_) => part_name(&self.out, self.parts.len()),
            None => self.out.clone(),
        };
        let tmp = crate::fs::sibling_temp(&fin, "partial");
        let file = File::create(&tmp).map_err(|e| DeployError::io("create", &tmp, e))?;
        self.finish_current()
            .map_err(|e| DeployError::io("write", &self.out, e))?;
        self.current = Some(BufWriter::with_capacity(1 << 20, file));
        self.parts.push((tmp, fin));
        self.in_part = 0;
        Ok(())
    }

    fn finish_current(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some(w) => {
                w.flush()?;
                w.get_ref().sync_all()
            }
            None => Ok(()),
        }
    }

    fn current(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.current
            .as_mut()
            .ok_or_else(|| io::Error::other("no open bundle part"))
    }

    /// Flushes, syncs and renames every part to its final name; returns the bundle's size.
    pub(super) fn commit(mut self) -> Result<u64, DeployError> {
        self.finish_current()
            .map_err(|e| DeployError::io("write", &self.out, e))?;
        for (tmp, fin) in &self.parts {
            fs::rename(tmp, fin).map_err(|e| DeployError::io("move into place", fin, e))?;
        }
        Ok(self.total)
    }

    /// Removes every part written so far.
    pub(super) fn discard(self) {
        for (tmp, _) in &self.parts {
            let _ = fs::remove_file(tmp);
        }
    }
}

impl Write for PartWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(limit) = self.limit {
            if self.in_part >= limit {
                self.open_next().map_err(io::Error::other)?;
            }
            let room = (limit - self.in_part) as usize;
            let n = self.current()?.write(&buf[..buf.len().min(room)])?;
            self.in_part += n as u64;
            self.total += n as u64;
            return Ok(n);
        }
        let n = self.current()?.write(buf)?;
        self.total += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.current()?.flush()
    }
}

/// The bundle's bytes: one file, or the parts `<x>.000`, `<x>.001`, … chained in order.
pub(super) fn open_bundle(path: &Path) -> Result<(Box<dyn Read>, u64), DeployError> {
    let name = path.to_string_lossy();
    let first = File::open(path).map_err(|e| DeployError::io("open", path, e))?;
    let mut total = first.metadata().map(|m| m.len()).unwrap_or(0);
    let Some(base) = name.strip_suffix(".000") else {
        return Ok((Box::new(first), total));
    };
    let mut reader: Box<dyn Read> = Box::new(first);
    for index in 1.. {
        let part = PathBuf::from(format!("{base}.{index:03}"));
        let Ok(f) = File::open(&part) else { break };
        total += f.metadata().map(|m| m.len()).unwrap_or(0);
        reader = Box::new(reader.chain(f));
    }
    Ok((reader, total))
}
