//! A [`SequenceModel`](recur::SequenceModel)'s embedding and head as ONNX nodes. Every readout reads the
//! recurrent output time-major, `(T, B, F)`, and gives `rows × F` in recur's row order, which a `Gemm` turns into
//! the predictions:
//!
//! ```text
//! embedding    ids ─ Gather(embedding.weight, ids)
//! every_step   out ─ [Transpose(1, 0, 2) when batch-first] ─ Reshape([-1, F])                       (T·B, F)
//! last         out ─ Slice(starts [-1], ends [i64::MAX], axes [0]) ─ Reshape([-1, F])                 (B, F)
//!   lengths    out ─ GatherElements(axis 0, Expand(Reshape(Cast(lens) − 1, [1, -1, 1]), [1, 1, F])) ─ Reshape
//! mean         out ─ ReduceMean(axes [0], keepdims 0)                                                  (B, F)
//!   lengths    Σ_t out ⊙ (Range(0, T) < lens) / lens: Shape, Gather, Range, Less, Cast, Mul, ReduceSum, Div
//! linear       rows ─ Gemm(head.weight, head.bias, transB = 1)                                   (rows, outputs)
//! ```

use recur::ReadoutName;

use super::graph::{self, GraphBuilder};
use crate::error::{Error, Result};
use crate::proto::tensor_proto::DataType;

/// The readout's rows `(rows, F)` from the time-major recurrent output `out` `(T, B, F)`; `lens` is the `INT32
/// [B]` lengths, when the graph has them.
pub(crate) fn readout(
    g: &mut GraphBuilder,
    readout: ReadoutName,
    out: &str,
    features: usize,
    batch_first: bool,
    lens: Option<&str>,
    opset: i64,
) -> Result<String> {
    let f = features as i64;
    let rows = |g: &mut GraphBuilder, value: &str| {
        let shape = g.ints("rows", &[-1, f]);
        g.op("Reshape", &[value, &shape], Vec::new())
    };
    match (readout, lens) {
        (ReadoutName::EveryStep, _) => {
            let ordered =
                if batch_first { g.op("Transpose", &[out], vec![graph::ints("perm", &[1, 0, 2])]) } else { out.into() };
            Ok(rows(g, &ordered))
        }
        (ReadoutName::Last, None) => {
            let (starts, ends, axes) = (g.ints("starts", &[-1]), g.ints("ends", &[i64::MAX]), g.ints("axes", &[0]));
            let last = g.op("Slice", &[out, &starts, &ends, &axes], Vec::new());
            Ok(rows(g, &last))
        }
        (ReadoutName::Last, Some(lens)) => {
            let lens = g.op("Cast", &[lens], vec![graph::int("to", DataType::Int64 as i64)]);
            let one = g.ints("one", &[1]);
            let last = g.op("Sub", &[&lens, &one], Vec::new());
            let shape = g.ints("index_shape", &[1, -1, 1]);
            let index = g.op("Reshape", &[&last, &shape], Vec::new());
            let widths = g.ints("index_widths", &[1, 1, f]);
            let index = g.op("Expand", &[&index, &widths], Vec::new());
            let last = g.op("GatherElements", &[out, &index], vec![graph::int("axis", 0)]);
            Ok(rows(g, &last))
        }
        (ReadoutName::Mean, None) => Ok(if opset >= 18 {
            let axes = g.ints("axes", &[0]);
            g.op("ReduceMean", &[out, &axes], vec![graph::int("keepdims", 0)])
        } else {
            g.op("ReduceMean", &[out], vec![graph::ints("axes", &[0]), graph::int("keepdims", 0)])
        }),
        (ReadoutName::Mean, Some(lens)) => {
            let shape = g.op("Shape", &[out], Vec::new());
            let zero = g.scalar("zero", 0);
            let steps = g.op("Gather", &[&shape, &zero], vec![graph::int("axis", 0)]);
            let one = g.scalar("one", 1);
            let t = g.op("Range", &[&zero, &steps, &one], Vec::new());
            let column = g.ints("column", &[-1, 1]);
            let t = g.op("Reshape", &[&t, &column], Vec::new());
            let lens64 = g.op("Cast", &[lens], vec![graph::int("to", DataType::Int64 as i64)]);
            let row = g.ints("row", &[1, -1]);
            let lens_row = g.op("Reshape", &[&lens64, &row], Vec::new());
            let valid = g.op("Less", &[&t, &lens_row], Vec::new());
            let mask = g.op("Cast", &[&valid], vec![graph::int("to", DataType::Float as i64)]);
            let mask_shape = g.ints("mask_shape", &[0, 0, 1]);
            let mask = g.op("Reshape", &[&mask, &mask_shape], Vec::new());
            let masked = g.op("Mul", &[out, &mask], Vec::new());
            let axes = g.ints("axes", &[0]);
            let sum = g.op("ReduceSum", &[&masked, &axes], vec![graph::int("keepdims", 0)]);
            let count = g.op("Cast", &[lens], vec![graph::int("to", DataType::Float as i64)]);
            let count = g.op("Reshape", &[&count, &column], Vec::new());
            Ok(g.op("Div", &[&sum, &count], Vec::new()))
        }
        (ReadoutName::Attention, _) => Err(attention_unsupported()),
    }
}

/// The error for the `attention` readout, which has no ONNX form here.
pub(crate) fn attention_unsupported() -> Error {
    Error::ExportUnsupported {
        reason: "the `attention` readout (its pooling has no ONNX form here); last, mean and every_step export".into(),
    }
}
