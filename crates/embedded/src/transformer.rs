//! A llama-architecture decoder run on the CPU: RMSNorm, rotary attention with grouped KV
//! heads, a SwiGLU feed-forward. One forward pass takes any mix of rows from different
//! sequences — a prompt's tokens, or the next token of several streams — so concurrent
//! generations share every read of the weights.

use super::kv::Vectors;
use std::cell::RefCell;

use rayon::prelude::*;

use super::attention::{self, HeadCache, Query};
use super::gguf::{Gguf, GgufError};
use super::quant::{Activations, Matrix, QuantError, read_vector};
use super::team;
use super::vector;

/// Rows one task of `rms_norm` takes, and gate values one task of the SiLU product: a decode
/// step's few rows are one task, a prompt's many are shared.
const NORM_ROWS: usize = 16;
const SILU_TASK: usize = 16 * 1024;

/// The longest context a model file may declare (SmolLM2's is 8,192).
const MAX_CONTEXT: usize = 1 << 20;

thread_local! {
    /// Attention's tile buffers, one per thread of the team.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Why a model cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error("architecture `{0}` is not supported (llama-architecture GGUF models are)")]
    Architecture(String),
    #[error("tensor `{0}` is missing")]
    Tensor(String),
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("hyper-parameter `{0}` is out of range")]
    Hyper(&'static str),
}

/// The model's shape.
#[derive(Debug, Clone)]
pub struct Hyper {
    pub layers: usize,
    pub dim: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab: usize,
    pub context: usize,
    pub rope_base: f32,
    pub eps: f32,
}

impl Hyper {
    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    q: Matrix,
    k: Matrix,
    v: Matrix,
    o: Matrix,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// Loaded weights.
pub struct Transformer {
    pub hyper: Hyper,
    embed: Matrix,
    layers: Vec<Layer>,
    out_norm: Vec<f32>,
    /// `None`: the output projection is tied to the embeddings.
    output: Option<Matrix>,
    /// cos/sin of every (position, pair) up to the context length.
    rope: Vec<(f32, f32)>,
}

/// Keys and values a sequence has computed so far, as signed bytes with a scale per vector
/// ([`Vectors`]). One vector per layer and key/value head, position after position, so an
/// attention task reads one contiguous run.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Indexed by `layer * kv_heads + head`.
    k: Vec<Vectors>,
    v: Vec<Vectors>,
    len: usize,
    /// Values per position in one vector (the head's width).
    width: usize,
}

impl KvCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A cache of `len` zero positions in `vectors` vectors of `width` (for tests).
    #[cfg(test)]
    pub(crate) fn zeroed(vectors: usize, width: usize, len: usize) -> KvCache {
        let mut zeros = Vectors::default();
        for _ in 0..len {
            zeros.push(&vec![0.0; width]);
        }
        KvCache {
            k: vec![zeros.clone(); vectors],
            v: vec![zeros; vectors],
            len,
            width,
        }
    }

    /// Bytes its keys and values take.
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(Vectors::bytes).sum()
    }

    /// Its vectors (layers × key/value heads) and their width.
    pub fn shape(&self) -> (usize, usize) {
        (self.k.len(), self.width)
    }

    /// Appends its keys, then its values, vector after vector ([`Vectors::write`]).
    pub fn write_values(&self, out: &mut Vec<u8>) {
        for vectors in self.k.iter().chain(&self.v) {
            vectors.write(out);
        }
    }

    /// A cache of `len` positions shaped as `empty`, from what [`KvCache::write_values`]
    /// wrote; `None` if `values` is not exactly that or does not read.
    pub fn read_values(empty: &KvCache, values: &[u8], len: usize) -> Option<KvCache> {
        let mut rest = values;
        let mut read = || -> Option<Vec<Vectors>> {
            (0..empty.k.len())
                .map(|_| {
                    let (vectors, after) = Vectors::read(rest, len, empty.width)?;
                    rest = after;
                    Some(vectors)
                })
                .collect()
        };
        let k = read()?;
        let v = read()?;
        rest.is_empty().then_some(KvCache {
            k,
            v,
            len,
            width: empty.width,
        })
    }

    /// Keeps the first `len` positions.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            for vectors in self.k.iter_mut().chain(self.v.iter_mut()) {
                vectors.truncate(len, self.width);
            }
            self.len = len;
        }
    }

    /// A copy of the first `len` positions (a shared prompt prefix).
    pub fn prefix(&self, len: usize) -> KvCache {
        let len = len.min(self.len);
        let take = |heads: &Vec<Vectors>| heads.iter().map(|h| h.prefix(len, self.width)).collect();
        KvCache {
            k: take(&self.k),
            v: take(&self.v),
            len,
            width: self.width,
        }
    }
}

/// One row of a forward pass: `token` at `pos` of sequence `seq` (an index into the caches).
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub seq: usize,
    pub token: u32,
    pub pos: usize,
    /// Whether the caller wants this row's next-token logits.
    pub logits: bool,
    /// A prompt's token (being filled or read) or one just generated: the two attend with
    /// different kernels.
    pub kind: attention::Rows,
}

fn tensor<'a>(gguf: &'a Gguf, name: &str) -> Result<&'a super::gguf::TensorInfo, LoadError> {
    gguf.tensors
        .get(name)
        .ok_or_else(|| LoadError::Tensor(name.to_string()))
}

fn matrix(
    gguf: &Gguf,
    file: &[u8],
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Matrix, LoadError> {
    let info = tensor(gguf, name)?;
    if info.dims != [cols, rows] {
        return Err(LoadError::Shape {
            name: name.into(),
            found: info.dims.clone(),
            expected: vec![cols, rows],
        });
    }
    Ok(Matrix::from_ggml(
        &file[info.start..],
        info.kind,
        rows,
        cols,
        name,
    )?)
}

fn vector(gguf: &Gguf, file: &[u8], name: &str, len: usize) -> Result<Vec<f32>, LoadError> {
    let info = tensor(gguf, name)?;
    if info.dims != [len] {
        return Err(LoadError::Shape {
            name: name.into(),
            found: info.dims.clone(),
            expected: vec![len],
        });
    }
    Ok(read_vector(&file[info.start..], info.kind, len, name)?)
}

impl Transformer {
    /// Builds the model from a GGUF file's bytes; the weights are copied out of `file`.
    pub fn load(gguf: &Gguf, file: &[u8]) -> Result<Transformer, LoadError> {
        let arch = gguf.str("general.architecture")?;
        if arch != "llama" {
            return Err(LoadError::Architecture(arch.to_string()));
        }
        let int = |key: &str| -> Result<usize, LoadError> {
            let v = gguf.int(&format!("llama.{key}"))?;
            usize::try_from(v).map_err(|_| LoadError::Hyper("a dimension"))
        };
        let dim = int("embedding_length")?;
        let heads = int("attention.head_count")?;
        let kv_heads = gguf
            .int("llama.attention.head_count_kv")
            .map(|v| v as usize)
            .unwrap_or(heads);
        // Rotary embedding rotates pairs: a head's width must be even.
        if heads == 0
            || kv_heads == 0
            || !dim.is_multiple_of(heads)
            || !heads.is_multiple_of(kv_heads)
            || !(dim / heads).is_multiple_of(2)
        {
            return Err(LoadError::Hyper("attention.head_count"));
        }
        // The rotary table holds a row per position: a file's context length must be one
        // memory can hold.
        let context = int("context_length")?;
        if !(1..=MAX_CONTEXT).contains(&context) {
            return Err(LoadError::Hyper("context_length"));
        }
        let vocab = gguf.strings("tokenizer.ggml.tokens")?.len();
        let hyper = Hyper {
            layers: int("block_count")?,
            dim,
            heads,
            kv_heads,
            head_dim: dim / heads,
            ffn_dim: int("feed_forward_length")?,
            vocab,
            context,
            rope_base: gguf.float("llama.rope.freq_base").unwrap_or(10_000.0) as f32,
            eps: gguf
                .float("llama.attention.layer_norm_rms_epsilon")
                .unwrap_or(1e-5) as f32,
        };
        let h = &hyper;
        // In parallel on the current rayon pool: laying out the weights takes most of a load.
        let layers = (0..h.layers)
            .into_par_iter()
            .map(|i| {
                let m = |name: &str, rows, cols| {
                    matrix(gguf, file, &format!("blk.{i}.{name}.weight"), rows, cols)
                };
                Ok(Layer {
                    attn_norm: vector(gguf, file, &format!("blk.{i}.attn_norm.weight"), dim)?,
                    q: m("attn_q", dim, dim)?,
                    k: m("attn_k", h.kv_dim(), dim)?,
                    v: m("attn_v", h.kv_dim(), dim)?,
                    o: m("attn_output", dim, dim)?,
                    ffn_norm: vector(gguf, file, &format!("blk.{i}.ffn_norm.weight"), dim)?,
                    gate: m("ffn_gate", h.ffn_dim, dim)?,
                    up: m("ffn_up", h.ffn_dim, dim)?,
                    down: m("ffn_down", dim, h.ffn_dim)?,
                })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        let output = match gguf.tensors.contains_key("output.weight") {
            true => Some(matrix(gguf, file, "output.weight", vocab, dim)?),
            false => None,
        };
        let pairs = h.head_dim / 2;
        let rope = (0..h.context)
            .flat_map(|pos| {
                (0..pairs).map(move |i| {
                    let freq = h.rope_base.powf(-2.0 * i as f32 / h.head_dim as f32);
                    let angle = pos as f32 * freq;
                    (angle.cos(), angle.sin())
                })
            })
            .collect();
        Ok(Transformer {
            embed: matrix(gguf, file, "token_embd.weight", vocab, dim)?,
            out_norm: vector(gguf, file, "output_norm.weight", dim)?,
            output,
            layers,
            rope,
            hyper,
        })
    }

    /// An empty cache shaped for this model.
    pub fn new_cache(&self) -> KvCache {
        let vectors = self.hyper.layers * self.hyper.kv_heads;
        KvCache {
            k: vec![Vectors::default(); vectors],
            v: vec![Vectors::default(); vectors],
            len: 0,
            width: self.hyper.head_dim,
        }
    }

    /// Runs `rows` through the model, appending their keys and values to `caches`, and puts
    /// the logits of the rows that asked for them in `logits`, in order, one vocabulary-long
    /// row after another (a step of likelihood reads asks for hundreds: tens of megabytes,
    /// so the caller keeps the buffer rather than have the kernel map and zero new pages
    /// every step). The rows of one sequence must continue its cache in order of position.
    /// Call it inside the model's [`Team::install`](super::team::Team::install), whose
    /// threads share its loops.
    pub fn forward(&self, rows: &[Row], caches: &mut [KvCache], logits: &mut Vec<f32>) {
        let h = &self.hyper;
        let (n, dim, kv_dim) = (rows.len(), h.dim, h.kv_dim());
        for row in rows {
            let cache = &mut caches[row.seq];
            debug_assert_eq!(row.pos, cache.len, "rows continue their sequence");
            cache.len = cache.len.max(row.pos + 1);
        }
        let mut x = vec![0f32; n * dim];
        for (row, out) in rows.iter().zip(x.chunks_mut(dim)) {
            self.embed.row(row.token as usize, out);
        }
        let mut normed = vec![0f32; n * dim];
        let mut q = vec![0f32; n * dim];
        let mut k = vec![0f32; n * kv_dim];
        let mut v = vec![0f32; n * kv_dim];
        let mut attended = vec![0f32; n * dim];
        let mut projected = vec![0f32; n * dim];
        let mut gate = vec![0f32; n * h.ffn_dim];
        let mut up = vec![0f32; n * h.ffn_dim];

        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, h.eps, &mut normed);
            let acts = Activations::new(&normed, dim);
            Matrix::matmul_each(
                &mut [(&layer.q, &mut q), (&layer.k, &mut k), (&layer.v, &mut v)],
                &acts,
            );
            for (i, row) in rows.iter().enumerate() {
                self.rotate(&mut q[i * dim..][..dim], row.pos);
                self.rotate(&mut k[i * kv_dim..][..kv_dim], row.pos);
                let cache = &mut caches[row.seq];
                let hd = h.head_dim;
                for head in 0..h.kv_heads {
                    let at = l * h.kv_heads + head;
                    for (store, new) in [(&mut cache.k[at], &k), (&mut cache.v[at], &v)] {
                        store.truncate(row.pos, hd);
                        store.push(&new[i * kv_dim + head * hd..][..hd]);
                    }
                }
            }
            self.attend(rows, caches, l, &q, &mut attended);
            layer
                .o
                .matmul(&Activations::new(&attended, dim), &mut projected);
            add(&mut x, &projected);

            rms_norm(&x, &layer.ffn_norm, h.eps, &mut normed);
            let acts = Activations::new(&normed, dim);
            Matrix::matmul_each(&mut [(&layer.gate, &mut gate), (&layer.up, &mut up)], &acts);
            team::for_each_chunk(&mut gate, SILU_TASK, |k, gate| {
                vector::silu_mul(gate, &up[k * SILU_TASK..][..gate.len()])
            });
            layer
                .down
                .matmul(&Activations::new(&gate, h.ffn_dim), &mut projected);
            add(&mut x, &projected);
        }

        let wanted: Vec<usize> = (0..n).filter(|&i| rows[i].logits).collect();
        let mut last = vec![0f32; wanted.len() * dim];
        for (slot, &i) in wanted.iter().enumerate() {
            last[slot * dim..][..dim].copy_from_slice(&x[i * dim..][..dim]);
        }
        let mut normed = vec![0f32; last.len()];
        rms_norm(&last, &self.out_norm, h.eps, &mut normed);
        let output = self.output.as_ref().unwrap_or(&self.embed);
        logits.clear();
        logits.resize(wanted.len() * h.vocab, 0.0);
        if !wanted.is_empty() {
            output.matmul(&Activations::new(&normed, dim), logits);
        }
    }

    /// Rotary position embedding on consecutive pairs of each head (llama's "normal" mode).
    fn rotate(&self, heads: &mut [f32], pos: usize) {
        let pairs = self.hyper.head_dim / 2;
        let table = &self.rope[pos * pairs..][..pairs];
        for head in heads.chunks_mut(self.hyper.head_dim) {
            for (pair, &(cos, sin)) in head.chunks_mut(2).zip(table) {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * cos - b * sin;
                pair[1] = a * sin + b * cos;
            }
        }
    }

    /// Causal attention of every row over its own sequence. One task takes a block of up
    /// to 16 consecutive rows of one sequence and one kind ([`attention::Rows`]) and one
    /// key/value head, with all the query heads that share it, so each cached key and value
    /// is read once for all of them.
    fn attend(&self, rows: &[Row], caches: &[KvCache], layer: usize, q: &[f32], out: &mut [f32]) {
        const BLOCK_ROWS: usize = 16;
        let h = &self.hyper;
        let (hd, group) = (h.head_dim, h.heads / h.kv_heads);
        let scale = 1.0 / (hd as f32).sqrt();
        // out[row][kv head] is one slice of `group` query heads.
        let mut slots: Vec<Option<&mut [f32]>> = out.chunks_mut(group * hd).map(Some).collect();
        let mut tasks = Vec::new();
        let mut start = 0;
        while start < rows.len() {
            let mut end = start + 1;
            while end < rows.len()
                && end - start < BLOCK_ROWS
                && rows[end].seq == rows[start].seq
                && rows[end].kind == rows[start].kind
            {
                end += 1;
            }
            for kv_head in 0..h.kv_heads {
                let outs: Vec<(usize, &mut [f32])> = (start..end)
                    .filter_map(|i| slots[i * h.kv_heads + kv_head].take().map(|o| (i, o)))
                    .collect();
                tasks.push((kv_head, outs));
            }
            start = end;
        }
        // Chunks of one task: each is the one thread's that runs it.
        team::for_each_chunk(&mut tasks, 1, |_, task| {
            let (kv_head, outs) = &mut task[0];
            let kv_head = *kv_head;
            let Some(&(first, _)) = outs.first() else {
                return;
            };
            let cache = &caches[rows[first].seq];
            let at = layer * h.kv_heads + kv_head;
            let head_cache = HeadCache {
                keys: cache.k[at].view(),
                values: cache.v[at].view(),
            };
            let mut queries: Vec<Query> = Vec::with_capacity(outs.len() * group);
            for (i, out) in outs.iter_mut() {
                let i = *i;
                for (g, out) in out.chunks_mut(hd).enumerate() {
                    let head = kv_head * group + g;
                    queries.push(Query {
                        vector: &q[i * h.dim + head * hd..][..hd],
                        span: rows[i].pos + 1,
                        out,
                    });
                }
            }
            let kind = rows[first].kind;
            SCRATCH.with(|scratch| {
                attention::attend(
                    &mut queries,
                    &head_cache,
                    scale,
                    &mut scratch.borrow_mut(),
                    kind,
                )
            });
        });
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let dim = weight.len();
    // A prompt's rows are normalised on every thread of the team, a few rows a task.
    team::for_each_chunk(out, dim * NORM_ROWS, |k, out| {
        let rows = x[k * dim * NORM_ROWS..].chunks(dim);
        for (row, out) in rows.zip(out.chunks_mut(dim)) {
            let mean = row.iter().map(|v| v * v).sum::<f32>() / dim as f32;
            let scale = 1.0 / (mean + eps).sqrt();
            for ((o, v), w) in out.iter_mut().zip(row).zip(weight) {
                *o = v * scale * w;
            }
        }
    });
}
