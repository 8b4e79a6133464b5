//! Frozen graph → safetensors + JSON manifest.
//!
//! Every `DT_FLOAT` constant becomes one tensor named exactly as its TensorFlow node
//! (`FeatureExtractor/MobilenetV2/Conv/weights`) in TensorFlow's layout (see
//! [`LAYOUT`](super::manifest::LAYOUT)): models that load the file transpose on load, so the file
//! stays checkable against the graph. The manifest lists the subgraph that the chosen outputs
//! depend on, with attributes, so a hand-built model can be compared to the graph node by node.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::TfImportError;
use super::graph::FrozenGraph;
use super::graph_def::{AttrValue, ListValue, NodeDef, attr_value::Value, data_type};
use super::manifest::{
    ConstEntry, FileInfo, LAYOUT, MANIFEST_FORMAT, NodeEntry, TensorEntry, TfManifest,
};
use super::tensor::{const_shape, float_values, integer_values};

/// Non-float constants up to this many elements have their values in the manifest.
const MAX_LISTED_CONST_ELEMENTS: usize = 64;

/// What to convert and which part of the graph the manifest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertOptions {
    /// File stem of the outputs: `<stem>.safetensors` and `<stem>.json`.
    pub stem: String,
    /// Nodes the graph must have, or the conversion fails (guards against a wrong or cut file).
    pub required: Vec<String>,
    /// Nodes whose dependencies the manifest lists.
    pub outputs: Vec<String>,
    /// Nodes listed without following their inputs (e.g. where a preprocessing loop begins).
    pub stop_at: Vec<String>,
}

impl ConvertOptions {
    /// The TF1 object-detection API's SSD-MobileNetV2 COCO frozen graph
    /// (`ssd_mobilenet_v2_coco_2018_03_29`): the manifest lists the network from the scaled
    /// input to the raw box encodings (`concat`, [1, 1917, 1, 4]) and class logits (`concat_1`,
    /// [1, 1917, 91]), the sigmoid on the logits, and the bilinear resize of the preprocessor.
    pub fn ssd_mobilenet_v2() -> Self {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Self {
            stem: "ssd_mobilenet_v2_coco".into(),
            required: names(&[
                "image_tensor",
                "Preprocessor/map/while/ResizeImage/ResizeBilinear",
                "Preprocessor/sub",
                "concat",
                "concat_1",
                "detection_boxes",
                "detection_scores",
                "detection_classes",
                "num_detections",
            ]),
            outputs: names(&[
                "Preprocessor/map/while/ResizeImage/ResizeBilinear",
                "concat",
                "concat_1",
                "Postprocessor/convert_scores",
            ]),
            stop_at: names(&[
                "Preprocessor/map/while/ResizeImage/ExpandDims",
                "Preprocessor/map/TensorArrayStack/TensorArrayGatherV3",
            ]),
        }
    }
}

/// What a conversion wrote.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The safetensors file.
    pub weights_path: PathBuf,
    /// The JSON manifest.
    pub manifest_path: PathBuf,
    /// The manifest's content.
    pub manifest: TfManifest,
}

/// One float constant of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatConst {
    /// The `Const` node's name.
    pub name: String,
    /// Shape in TensorFlow's order.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// Every `DT_FLOAT` constant of the graph, in node order.
pub fn float_constants(graph: &FrozenGraph) -> Result<Vec<FloatConst>, TfImportError> {
    let mut out = Vec::new();
    for node in graph.nodes.iter().filter(|n| n.op == "Const") {
        let tensor = const_tensor(graph, node)?;
        if tensor.dtype != data_type::FLOAT {
            continue;
        }
        let (shape, values) = float_values(tensor).map_err(|message| TfImportError::BadTensor {
            path: graph.path.clone(),
            node: node.name.clone(),
            message,
        })?;
        out.push(FloatConst {
            name: node.name.clone(),
            shape,
            values,
        });
    }
    if out.is_empty() {
        return Err(TfImportError::NoWeights {
            path: graph.path.clone(),
        });
    }
    Ok(out)
}

fn const_tensor<'g>(
    graph: &FrozenGraph,
    node: &'g NodeDef,
) -> Result<&'g super::graph_def::TensorProto, TfImportError> {
    match node.attr.get("value").and_then(|a| a.value.as_ref()) {
        Some(Value::Tensor(t)) => Ok(t),
        _ => Err(TfImportError::BadTensor {
            path: graph.path.clone(),
            node: node.name.clone(),
            message: "Const without a tensor `value` attribute".into(),
        }),
    }
}

/// Reads the frozen graph at `pb`, writes `<out_dir>/<stem>.safetensors` and
/// `<out_dir>/<stem>.json`, and returns what it wrote.
pub fn convert(
    pb: &Path,
    out_dir: &Path,
    options: &ConvertOptions,
) -> Result<Converted, TfImportError> {
    let graph = FrozenGraph::read(pb)?;
    graph.require(&options.required)?;
    let consts = float_constants(&graph)?;

    std::fs::create_dir_all(out_dir).map_err(|source| TfImportError::Io {
        path: out_dir.to_owned(),
        source,
    })?;
    let weights_path = out_dir.join(format!("{}.safetensors", options.stem));
    let manifest_path = out_dir.join(format!("{}.json", options.stem));

    let weights_bytes = safetensors_bytes(&consts, &graph.sha256, &weights_path)?;
    write_atomically(&weights_path, &weights_bytes)?;

    let manifest = TfManifest {
        format: MANIFEST_FORMAT.into(),
        source: FileInfo {
            file: file_name(pb),
            sha256: graph.sha256.clone(),
            bytes: graph.bytes,
        },
        weights: FileInfo {
            file: file_name(&weights_path),
            sha256: format!("{:x}", Sha256::digest(&weights_bytes)),
            bytes: weights_bytes.len() as u64,
        },
        layout: LAYOUT.into(),
        tensor_count: consts.len(),
        parameter_count: consts.iter().map(|c| c.values.len() as u64).sum(),
        tensors: consts
            .iter()
            .map(|c| TensorEntry {
                name: c.name.clone(),
                shape: c.shape.clone(),
            })
            .collect(),
        outputs: options.outputs.clone(),
        stop_at: options.stop_at.clone(),
        nodes: Vec::new(),
        constants: Vec::new(),
        op_counts: op_counts(&graph),
    };
    let manifest = list_subgraph(&graph, options, manifest)?;
    let json = serde_json::to_vec_pretty(&manifest).map_err(|source| TfImportError::Manifest {
        path: manifest_path.clone(),
        source,
    })?;
    write_atomically(&manifest_path, &json)?;
    Ok(Converted {
        weights_path,
        manifest_path,
        manifest,
    })
}

fn safetensors_bytes(
    consts: &[FloatConst],
    source_sha256: &str,
    path: &Path,
) -> Result<Vec<u8>, TfImportError> {
    let to_error = |source| TfImportError::Safetensors {
        path: path.to_owned(),
        source,
    };
    let raw: Vec<Vec<u8>> = consts
        .iter()
        .map(|c| c.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = consts
        .iter()
        .zip(&raw)
        .map(|(c, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, c.shape.clone(), bytes)
                .map(|view| (c.name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(to_error)?;
    // One key only: safetensors writes the metadata map in HashMap order, and a second key
    // would make the file's bytes (and its SHA-256 in the manifest) differ from run to run.
    let metadata = HashMap::from([("source_sha256".to_string(), source_sha256.to_string())]);
    safetensors::serialize(views, Some(metadata)).map_err(to_error)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TfImportError> {
    let tmp = path.with_extension("partial");
    let io = |source| TfImportError::Io {
        path: path.to_owned(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn op_counts(graph: &FrozenGraph) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for node in &graph.nodes {
        *counts.entry(node.op.clone()).or_insert(0) += 1;
    }
    counts
}

/// Fills `nodes` (non-constant nodes the outputs depend on) and `constants` (the small
/// non-float constants those nodes read).
fn list_subgraph(
    graph: &FrozenGraph,
    options: &ConvertOptions,
    mut manifest: TfManifest,
) -> Result<TfManifest, TfImportError> {
    for i in graph.trace(&options.outputs, &options.stop_at)? {
        let node = &graph.nodes[i];
        if node.op != "Const" {
            manifest.nodes.push(NodeEntry {
                name: node.name.clone(),
                op: node.op.clone(),
                inputs: node.input.clone(),
                attrs: node
                    .attr
                    .iter()
                    .filter_map(|(k, v)| attr_json(v).map(|j| (k.clone(), j)))
                    .collect(),
            });
            continue;
        }
        let tensor = const_tensor(graph, node)?;
        if tensor.dtype == data_type::FLOAT {
            continue; // in the safetensors file
        }
        let bad = |message| TfImportError::BadTensor {
            path: graph.path.clone(),
            node: node.name.clone(),
            message,
        };
        let (shape, count) = const_shape(tensor.tensor_shape.as_ref()).map_err(bad)?;
        let values = if count <= MAX_LISTED_CONST_ELEMENTS {
            integer_values(tensor, count).map_err(bad)?
        } else {
            None
        };
        manifest.constants.push(ConstEntry {
            name: node.name.clone(),
            dtype: data_type::name(tensor.dtype),
            shape,
            values,
        });
    }
    Ok(manifest)
}

/// An attribute as JSON; constant tensors are left out (they are in the weights or constants).
fn attr_json(attr: &AttrValue) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match attr.value.as_ref()? {
        Value::S(bytes) => J::from(String::from_utf8_lossy(bytes).into_owned()),
        Value::I(i) => J::from(*i),
        Value::F(f) => J::from(*f),
        Value::B(b) => J::from(*b),
        Value::Type(t) => J::from(data_type::name(*t)),
        Value::Shape(s) => J::from(s.dim.iter().map(|d| d.size).collect::<Vec<_>>()),
        Value::Placeholder(p) => J::from(p.clone()),
        Value::List(list) => list_json(list),
        Value::Tensor(_) => return None,
    })
}

fn list_json(list: &ListValue) -> serde_json::Value {
    use serde_json::Value as J;
    if !list.i.is_empty() {
        J::from(list.i.clone())
    } else if !list.f.is_empty() {
        J::from(list.f.clone())
    } else if !list.s.is_empty() {
        J::from(
            list.s
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>(),
        )
    } else if !list.b.is_empty() {
        J::from(list.b.clone())
    } else if !list.r#type.is_empty() {
        J::from(
            list.r#type
                .iter()
                .map(|&t| data_type::name(t))
                .collect::<Vec<_>>(),
        )
    } else if !list.shape.is_empty() {
        J::from(
            list.shape
                .iter()
                .map(|s| s.dim.iter().map(|d| d.size).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
        )
    } else {
        J::Array(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tf_import::graph_def::{
        GraphDef, TensorProto, TensorShapeProto, tensor_shape_proto::Dim,
    };
    use prost::Message;

    fn shape(dims: &[i64]) -> Option<TensorShapeProto> {
        Some(TensorShapeProto {
            dim: dims.iter().map(|&size| Dim { size }).collect(),
            unknown_rank: false,
        })
    }

    fn const_node(name: &str, tensor: TensorProto) -> NodeDef {
        NodeDef {
            name: name.into(),
            op: "Const".into(),
            input: vec![],
            attr: BTreeMap::from([(
                "value".to_string(),
                AttrValue {
                    value: Some(Value::Tensor(tensor)),
                },
            )]),
        }
    }

    fn conv_graph() -> Vec<u8> {
        let weights: Vec<f32> = (0..2 * 2 * 3 * 4).map(|i| i as f32 * 0.5).collect();
        let conv = NodeDef {
            name: "net/Conv2D".into(),
            op: "Conv2D".into(),
            input: vec!["input".into(), "net/weights".into()],
            attr: BTreeMap::from([
                (
                    "strides".to_string(),
                    AttrValue {
                        value: Some(Value::List(ListValue {
                            i: vec![1, 2, 2, 1],
                            ..Default::default()
                        })),
                    },
                ),
                (
                    "padding".to_string(),
                    AttrValue {
                        value: Some(Value::S(b"SAME".to_vec())),
                    },
                ),
            ]),
        };
        let nodes = vec![
            NodeDef {
                name: "input".into(),
                op: "Placeholder".into(),
                ..Default::default()
            },
            const_node(
                "net/weights",
                TensorProto {
                    dtype: data_type::FLOAT,
                    tensor_shape: shape(&[2, 2, 3, 4]),
                    tensor_content: weights.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    ..Default::default()
                },
            ),
            const_node(
                "net/eps",
                TensorProto {
                    dtype: data_type::FLOAT,
                    tensor_shape: shape(&[]),
                    float_val: vec![0.001],
                    ..Default::default()
                },
            ),
            const_node(
                "net/shape",
                TensorProto {
                    dtype: data_type::INT32,
                    tensor_shape: shape(&[2]),
                    int_val: vec![-1, 4],
                    ..Default::default()
                },
            ),
            conv,
            NodeDef {
                name: "out".into(),
                op: "Reshape".into(),
                input: vec!["net/Conv2D".into(), "net/shape".into()],
                ..Default::default()
            },
        ];
        GraphDef { node: nodes }.encode_to_vec()
    }

    fn options() -> ConvertOptions {
        ConvertOptions {
            stem: "net".into(),
            required: vec!["out".into()],
            outputs: vec!["out".into()],
            stop_at: vec![],
        }
    }

    #[test]
    fn synthetic_graph_converts_with_names_layout_and_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let pb = dir.path().join("graph.pb");
        std::fs::write(&pb, conv_graph()).unwrap();
        let out = convert(&pb, &dir.path().join("out"), &options()).unwrap();

        let bytes = std::fs::read(&out.weights_path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let w = st.tensor("net/weights").unwrap();
        assert_eq!(w.shape(), &[2, 2, 3, 4]);
        let first: Vec<f32> = w.data()[..12]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(first, vec![0.0, 0.5, 1.0]);
        assert_eq!(st.tensor("net/eps").unwrap().shape(), &[] as &[usize]);
        assert!(
            st.tensor("net/shape").is_err(),
            "int constants are not weights"
        );

        // Converting again gives the same bytes (the manifest records their digest).
        let again = convert(&pb, &dir.path().join("again"), &options()).unwrap();
        assert_eq!(std::fs::read(&again.weights_path).unwrap(), bytes);
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(
            header.metadata().as_ref().unwrap()["source_sha256"].len(),
            64
        );

        let m: TfManifest =
            serde_json::from_slice(&std::fs::read(&out.manifest_path).unwrap()).unwrap();
        assert_eq!(m, out.manifest);
        assert_eq!(m.tensor_count, 2);
        assert_eq!(m.parameter_count, 2 * 2 * 3 * 4 + 1);
        assert_eq!(m.source.file, "graph.pb");
        assert_eq!(m.weights.sha256, format!("{:x}", Sha256::digest(&bytes)));
        let names: Vec<_> = m.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["input", "net/Conv2D", "out"]);
        let conv = &m.nodes[1];
        assert_eq!(conv.attrs["strides"], serde_json::json!([1, 2, 2, 1]));
        assert_eq!(conv.attrs["padding"], serde_json::json!("SAME"));
        assert_eq!(m.constants.len(), 1);
        assert_eq!(m.constants[0].values, Some(vec![-1, 4]));
    }

    #[test]
    fn graph_without_float_constants_has_no_weights() {
        let bytes = GraphDef {
            node: vec![NodeDef {
                name: "input".into(),
                op: "Placeholder".into(),
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let g = FrozenGraph::from_bytes(&bytes, Path::new("x.pb")).unwrap();
        assert!(matches!(
            float_constants(&g),
            Err(TfImportError::NoWeights { .. })
        ));
    }

    #[test]
    fn const_with_content_shorter_than_its_shape_names_the_node() {
        let bytes = GraphDef {
            node: vec![const_node(
                "net/weights",
                TensorProto {
                    dtype: data_type::FLOAT,
                    tensor_shape: shape(&[4, 4]),
                    tensor_content: vec![0; 60],
                    ..Default::default()
                },
            )],
        }
        .encode_to_vec();
        let g = FrozenGraph::from_bytes(&bytes, Path::new("x.pb")).unwrap();
        let err = float_constants(&g).unwrap_err();
        assert!(
            matches!(&err, TfImportError::BadTensor { node, .. } if node == "net/weights"),
            "{err}"
        );
    }

    #[test]
    fn missing_required_node_fails_the_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let pb = dir.path().join("graph.pb");
        std::fs::write(&pb, conv_graph()).unwrap();
        let mut opts = options();
        opts.required.push("detection_boxes".into());
        let err = convert(&pb, dir.path(), &opts).unwrap_err();
        assert!(matches!(err, TfImportError::MissingNode { .. }), "{err}");
        assert!(!dir.path().join("net.safetensors").exists());
    }

    /// The real SSD-MobileNetV2 graph installed by `scripts/install-detector.sh`. Required
    /// under CI (whose setup installs it); elsewhere the real-file tests say they were skipped.
    fn real_graph() -> Option<PathBuf> {
        let pb = crate::tf_import::detector_cache_dir().join("model/frozen_inference_graph.pb");
        if pb.is_file() {
            return Some(pb);
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "{} missing: scripts/install-detector.sh should have installed it",
            pb.display()
        );
        eprintln!("skipped: {} not installed", pb.display());
        None
    }

    #[test]
    fn real_graph_cut_anywhere_is_a_typed_error() {
        let Some(pb) = real_graph() else { return };
        let bytes = std::fs::read(&pb).unwrap();
        let n = bytes.len();
        // Inside the first node, at a few points through the weights, one byte short.
        for cut in [7, 1000, n / 3, n / 2, 2 * n / 3, n - 1] {
            let err = FrozenGraph::from_bytes(&bytes[..cut], Path::new("cut.pb"))
                .expect_err("a cut graph must not load");
            assert!(
                matches!(
                    err,
                    TfImportError::Decode { .. } | TfImportError::DanglingInput { .. }
                ),
                "cut at {cut}: {err}"
            );
        }
        // Garbage where the weights are: a flipped byte run at the middle of the file.
        let mut garbled = bytes.clone();
        garbled[n / 2..n / 2 + 64].fill(0xff);
        if let Ok(g) = FrozenGraph::from_bytes(&garbled, Path::new("garbled.pb")) {
            // 0xff inside a tensor's raw content still decodes: then the values differ.
            let good = FrozenGraph::from_bytes(&bytes, Path::new("good.pb")).unwrap();
            assert_ne!(
                float_constants(&g).unwrap(),
                float_constants(&good).unwrap()
            );
        }
    }

    #[test]
    fn real_graph_converts_to_the_documented_tensors() {
        let Some(pb) = real_graph() else { return };
        let dir = tempfile::tempdir().unwrap();
        let out = convert(&pb, dir.path(), &ConvertOptions::ssd_mobilenet_v2()).unwrap();
        let m = &out.manifest;
        // 16.9 M parameters per ../shared/ASSETS.md; the exact count is the graph's.
        assert!(
            (16_800_000..17_100_000).contains(&m.parameter_count),
            "{}",
            m.parameter_count
        );
        let shape_of = |name: &str| {
            m.tensors
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.shape.clone())
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        assert_eq!(
            shape_of("FeatureExtractor/MobilenetV2/Conv/weights"),
            [3, 3, 3, 32]
        );
        assert_eq!(
            shape_of("FeatureExtractor/MobilenetV2/expanded_conv/depthwise/depthwise_weights"),
            [3, 3, 32, 1]
        );
        assert_eq!(
            shape_of("BoxPredictor_0/ClassPredictor/weights"),
            [3, 3, 576, 273]
        );
        let conv = m
            .nodes
            .iter()
            .find(|n| n.name == "FeatureExtractor/MobilenetV2/Conv/Conv2D")
            .unwrap();
        assert_eq!(conv.attrs["strides"], serde_json::json!([1, 2, 2, 1]));
        assert_eq!(conv.attrs["padding"], serde_json::json!("SAME"));
        // The listed subgraph runs from the preprocessor's scaling to both heads.
        for name in [
            "Preprocessor/sub",
            "concat",
            "concat_1",
            "Postprocessor/convert_scores",
        ] {
            assert!(m.nodes.iter().any(|n| n.name == name), "{name} not listed");
        }
        assert_eq!(
            m.nodes
                .iter()
                .filter(|n| n.op == "DepthwiseConv2dNative")
                .count(),
            21
        );
        // The weights read back bit for bit.
        let bytes = std::fs::read(&out.weights_path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.len(), m.tensor_count);
        let graph = FrozenGraph::read(&pb).unwrap();
        let mean = float_constants(&graph)
            .unwrap()
            .into_iter()
            .find(|c| c.name == "FeatureExtractor/MobilenetV2/Conv/BatchNorm/moving_mean")
            .unwrap();
        let stored = st
            .tensor("FeatureExtractor/MobilenetV2/Conv/BatchNorm/moving_mean")
            .unwrap();
        let stored: Vec<f32> = stored
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(stored, mean.values);
    }
}
