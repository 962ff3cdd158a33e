//! Chunk-by-chunk iteration for pipelines: [`Array::blocks`] yields the
//! array's chunks in storage order while a background thread reads the next
//! ones ahead, and [`Array::block_writer`] takes blocks in and writes them
//! behind the caller's back. Both hold at most a few blocks in flight, so
//! memory stays bounded whatever the array's size.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use ndarray::ArrayD;

use crate::array::Array;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::ops::box_selection;

/// Blocks read ahead of the consumer (and queued for the writer).
const IN_FLIGHT: usize = 2;

/// One block of an array: where it starts and its data (its shape is the
/// chunk's part inside the array).
#[derive(Debug, Clone, PartialEq)]
pub struct Block<T> {
    /// Array position of the block's first element.
    pub origin: Vec<u64>,
    /// The block's elements.
    pub data: ArrayD<T>,
}

/// Iterator over an array's chunks in storage (row-major grid) order; see
/// [`Array::blocks`].
pub struct Blocks<T: Element> {
    rx: Option<Receiver<Result<Block<T>>>>,
    reader: Option<JoinHandle<()>>,
}

impl<T: Element> Iterator for Blocks<T> {
    type Item = Result<Block<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl<T: Element> Drop for Blocks<T> {
    fn drop(&mut self) {
        // Closing the channel stops the reader at its next send.
        self.rx.take();
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

/// Writes blocks on a background thread; see [`Array::block_writer`].
pub struct BlockWriter<T: Element> {
    tx: Option<SyncSender<Block<T>>>,
    writer: Option<JoinHandle<Result<()>>>,
    array: Array<T>,
}

impl<T: Element> BlockWriter<T> {
    /// Queues a block for writing at `origin`; blocks while
    /// `IN_FLIGHT` blocks are already queued. Returns the writer's error
    /// if an earlier block failed.
    pub fn write(&mut self, origin: &[u64], data: ArrayD<T>) -> Result<()> {
        let block = Block {
            origin: origin.to_vec(),
            data,
        };
        let sent = match &self.tx {
            Some(tx) => tx.send(block).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The writer stopped: it failed. Report why.
            self.join()?;
            Err(Error::invalid("the block writer is closed"))
        }
    }

    fn join(&mut self) -> Result<()> {
        self.tx.take();
        match self.writer.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(Error::invalid("the block writer thread panicked"))),
            None => Ok(()),
        }
    }

    /// Waits for every queued block to be written, then flushes the array
    /// (durable when this returns `Ok`).
    pub fn finish(mut self) -> Result<()> {
        self.join()?;
        self.array.flush()
    }
}

impl<T: Element> Drop for BlockWriter<T> {
    fn drop(&mut self) {
        if let Err(e) = self.join() {
            eprintln!("chunkyard: a block writer dropped without finish() failed: {e}");
        }
    }
}

impl<T: Element> Array<T> {
    /// Iterates over the array's chunks in storage order, each as a
    /// [`Block`], with the next chunks read ahead on a background thread
    /// so that a sequential scan runs at the store's speed.
    pub fn blocks(&self) -> Blocks<T> {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let a = self.clone();
        let reader = std::thread::spawn(move || {
            let grid = crate::ChunkGrid::new(&a.shape(), a.chunks(), T::DTYPE.size())
                .expect("the array's own grid is valid");
            for coord in grid.chunk_coords() {
                let origin = grid.chunk_origin(&coord);
                let extent = grid.chunk_extent(&coord);
                let block = a
                    .view()
                    .read_streaming(box_selection(&origin, &extent))
                    .map(|data| Block {
                        origin: origin.to_vec(),
                        data,
                    });
                let failed = block.is_err();
                if tx.send(block).is_err() || failed {
                    return;
                }
            }
        });
        Blocks {
            rx: Some(rx),
            reader: Some(reader),
        }
    }

    /// A writer that takes blocks (`origin` + data, any shape that fits)
    /// and writes them on a background thread, so that producing the next
    /// block overlaps writing this one. Blocks that cover whole chunks are
    /// never read first. Call [`BlockWriter::finish`] to wait and flush.
    pub fn block_writer(&self) -> BlockWriter<T> {
        let (tx, rx) = sync_channel::<Block<T>>(IN_FLIGHT);
        let a = self.clone();
        let writer = std::thread::spawn(move || -> Result<()> {
            for b in rx {
                let counts: Vec<u64> = b.data.shape().iter().map(|&n| n as u64).collect();
                a.write(&box_selection(&b.origin, &counts), &b.data)?;
            }
            Ok(())
        });
        BlockWriter {
            tx: Some(tx),
            writer: Some(writer),
            array: self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChunkCache;
    use crate::store::{MemoryStore, StoreMeta};
    use ndarray::IxDyn;
    use std::sync::Arc;

    fn mem(shape: &[u64], chunks: &[u64]) -> (Array<u16>, Arc<MemoryStore>) {
        let meta = StoreMeta {
            dtype: crate::DType::U16,
            shape: shape.to_vec(),
            chunks: chunks.to_vec(),
            fill: vec![0; 2],
        };
        let s = Arc::new(MemoryStore::new(meta));
        (
            Array::from_store(s.clone(), ChunkCache::new(1 << 12)).unwrap(),
            s,
        )
    }

    #[test]
    fn blocks_cover_the_array_in_storage_order() {
        let (a, _) = mem(&[7, 10], &[3, 4]);
        let data = ArrayD::from_shape_fn(IxDyn(&[7, 10]), |i| (i[0] * 10 + i[1]) as u16);
        a.write(.., &data).unwrap();
        let blocks: Vec<Block<u16>> = a.blocks().collect::<Result<_>>().unwrap();
        assert_eq!(blocks.len(), 9);
        assert_eq!(blocks[1].origin, vec![0, 4]);
        assert_eq!(blocks[8].data.shape(), &[1, 2]);
        let mut seen = ArrayD::<u16>::zeros(IxDyn(&[7, 10]));
        for b in &blocks {
            let (r, c) = (b.origin[0] as usize, b.origin[1] as usize);
            let (h, w) = (b.data.shape()[0], b.data.shape()[1]);
            seen.slice_mut(ndarray::s![r..r + h, c..c + w].as_ref())
                .assign(&b.data);
        }
        assert_eq!(seen, data);
        // Dropping a half-consumed iterator stops its reader.
        let mut it = a.blocks();
        assert!(it.next().is_some());
        drop(it);
    }

    #[test]
    fn writer_round_trips_through_blocks() {
        let (a, _) = mem(&[7, 10], &[3, 4]);
        let (b, store) = mem(&[7, 10], &[3, 4]);
        let data = ArrayD::from_shape_fn(IxDyn(&[7, 10]), |i| (i[0] * 10 + i[1]) as u16 + 1);
        a.write(.., &data).unwrap();
        let mut w = b.block_writer();
        for blk in a.blocks() {
            let blk = blk.unwrap();
            w.write(&blk.origin, blk.data.mapv(|v| v * 2)).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(b.read(..).unwrap(), data.mapv(|v| v * 2));
        assert_eq!(store.reopen().chunk_count(), 9, "finish() made it durable");
    }

    #[test]
    fn writer_reports_a_failed_block() {
        let (a, _) = mem(&[4, 4], &[2, 2]);
        let mut w = a.block_writer();
        // A block that sticks out of the array fails in the writer thread;
        // finish() reports it.
        let bad = ArrayD::<u16>::zeros(IxDyn(&[3, 3]));
        w.write(&[2, 2], bad).unwrap();
        let err = w.finish().unwrap_err();
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    }
}
