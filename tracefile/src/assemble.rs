//! [`TraceAssembler`]: validated chunks → a [`Trace`] (records grouped per
//! stream, ascending seq, duplicates dropped, loss windows computed).

use crate::reader::{Chunk, ChunkBody, RecordChunk};
use crate::{LossWindow, ReadReport, StreamData, Trace};
use collector::{LossCounters, Record, StreamId, StreamInfo, TraceMeta};

#[derive(Default)]
struct Acc {
    info: Option<StreamInfo>,
    records: Vec<Record>,
    /// Still ascending (no sort needed).
    ascending: bool,
    loss: LossCounters,
}

/// Collects chunks (from a [`crate::TraceReader`], or built in memory by a
/// simulator) into the [`Trace`] a reader returns.
#[derive(Default)]
pub struct TraceAssembler {
    meta: Option<TraceMeta>,
    streams: Vec<Acc>,
    footer_last: bool,
}

fn max_loss(a: &LossCounters, b: &LossCounters) -> LossCounters {
    LossCounters {
        lost_full: a.lost_full.max(b.lost_full),
        lost_too_big: a.lost_too_big.max(b.lost_too_big),
        lost_write: a.lost_write.max(b.lost_write),
        lost_corrupt: a.lost_corrupt.max(b.lost_corrupt),
    }
}

impl TraceAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    fn acc(&mut self, id: StreamId) -> &mut Acc {
        let i = id as usize;
        if self.streams.len() <= i {
            self.streams.resize_with(i + 1, || Acc {
                ascending: true,
                ..Default::default()
            });
        }
        &mut self.streams[i]
    }

    /// Sets the metadata (the first one wins).
    pub fn meta(&mut self, meta: TraceMeta) {
        if self.meta.is_none() {
            self.meta = Some(meta);
        }
    }

    /// Declares a stream (the first declaration of an id wins).
    pub fn declare(&mut self, info: StreamInfo) {
        let a = self.acc(info.id);
        if a.info.is_none() {
            a.info = Some(info);
        }
    }

    /// Adds records of one stream with the stream's cumulative counters as
    /// of the last of them. Records may come in any order and repeat.
    pub fn records(&mut self, stream: StreamId, records: Vec<Record>, loss: &LossCounters) {
        let a = self.acc(stream);
        a.loss = max_loss(&a.loss, loss);
        for r in records {
            if a.ascending {
                if let Some(last) = a.records.last() {
                    if r.seq() <= last.seq() {
                        a.ascending = false;
                    }
                }
            }
            a.records.push(r);
        }
    }

    /// Adds one validated chunk.
    pub fn chunk(&mut self, chunk: Chunk) {
        self.footer_last = false;
        match chunk.body {
            ChunkBody::Meta(m) => self.meta(m),
            ChunkBody::Stream(info) => self.declare(info),
            ChunkBody::Records(RecordChunk {
                stream,
                loss,
                records,
                ..
            }) => self.records(stream, records, &loss),
            ChunkBody::Footer(_) => self.footer_last = true,
            ChunkBody::Unknown { .. } => {}
        }
    }

    /// True when the last chunk added was a footer.
    pub fn footer_last(&self) -> bool {
        self.footer_last
    }

    /// Builds the trace. `report` is completed with the duplicate count and
    /// the footer flag.
    pub fn finish(self, mut report: ReadReport) -> Trace {
        report.clean_footer = self.footer_last;
        let mut streams = Vec::with_capacity(self.streams.len());
        for (id, mut a) in self.streams.into_iter().enumerate() {
            if !a.ascending {
                a.records.sort_by_key(|r| r.seq());
            }
            let before = a.records.len();
            a.records.dedup_by_key(|r| r.seq());
            report.duplicates_dropped += (before - a.records.len()) as u64;
            let loss_windows = loss_windows(id as StreamId, &a.records, &a.loss);
            let mut batches = Vec::new();
            let mut anchors = Vec::new();
            for r in a.records {
                match r {
                    Record::Batch(b) => batches.push(b),
                    Record::Anchor(x) => anchors.push(x),
                }
            }
            streams.push(StreamData {
                info: a.info,
                batches,
                anchors,
                loss: a.loss,
                loss_windows,
            });
        }
        Trace {
            meta: self.meta.unwrap_or_default(),
            streams,
            report,
        }
    }
}

fn tsc_of(r: &Record) -> u64 {
    match r {
        Record::Batch(b) => b.tsc,
        Record::Anchor(a) => a.tsc,
    }
}

/// Sequence gaps in `records` (ascending, unique) as windows, plus the
/// records the final counters say were lost after the last one seen.
pub fn loss_windows(stream: StreamId, records: &[Record], loss: &LossCounters) -> Vec<LossWindow> {
    loss_windows_from(stream, records.iter().map(|r| (r.seq(), tsc_of(r))), loss)
}

/// The loss-window rule over `(seq, tsc)` pairs in ascending, unique seq
/// order: every gap is a window bounded by its neighbours' timestamps, and
/// whatever the final counters count beyond the gaps was lost after the last
/// record. The one definition, shared by the reader and by engines that
/// index records in their own layout.
pub fn loss_windows_from(
    stream: StreamId,
    records: impl IntoIterator<Item = (u64, u64)>,
    loss: &LossCounters,
) -> Vec<LossWindow> {
    let mut out = Vec::new();
    let mut next: u64 = 0;
    let mut prev_tsc = None;
    let mut gaps: u64 = 0;
    for (s, tsc) in records {
        if s > next {
            out.push(LossWindow {
                stream,
                first_seq: next,
                last_seq: s - 1,
                after_tsc: prev_tsc,
                before_tsc: Some(tsc),
            });
            gaps = gaps.saturating_add(s - next);
        }
        next = s.saturating_add(1);
        prev_tsc = Some(tsc);
    }
    let trailing = loss.total().saturating_sub(gaps);
    if trailing > 0 {
        out.push(LossWindow {
            stream,
            first_seq: next,
            last_seq: next.saturating_add(trailing - 1),
            after_tsc: prev_tsc,
            before_tsc: None,
        });
    }
    out
}
