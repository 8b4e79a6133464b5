//! A frozen graph read from disk and checked: bounded file size, valid protobuf, unique node
//! names, every input present. Plus the trace of the subgraph a set of outputs depends on.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use prost::Message;
use sha2::{Digest, Sha256};

use super::error::TfImportError;
use super::graph_def::{GraphDef, NodeDef};

/// The largest frozen graph accepted (1 GiB). The file is read whole, so this bounds memory.
pub const MAX_GRAPH_BYTES: u64 = 1 << 30;

/// A decoded, checked frozen graph.
#[derive(Debug, Clone)]
pub struct FrozenGraph {
    /// Where it was read from.
    pub path: PathBuf,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// The nodes in file order.
    pub nodes: Vec<NodeDef>,
    index: HashMap<String, usize>,
}

impl FrozenGraph {
    /// Reads and checks a frozen graph (`.pb`), refusing files over [`MAX_GRAPH_BYTES`].
    pub fn read(path: &Path) -> Result<Self, TfImportError> {
        let io = |source| TfImportError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > MAX_GRAPH_BYTES {
            return Err(TfImportError::FileTooLarge {
                path: path.to_owned(),
                size,
                limit: MAX_GRAPH_BYTES,
            });
        }
        // The file may grow between the size check and the read; `take` keeps the bound.
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(MAX_GRAPH_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_GRAPH_BYTES {
            return Err(TfImportError::FileTooLarge {
                path: path.to_owned(),
                size: bytes.len() as u64,
                limit: MAX_GRAPH_BYTES,
            });
        }
        Self::from_bytes(&bytes, path)
    }

    /// Decodes and checks a frozen graph from its bytes; `path` only names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, TfImportError> {
        let graph = GraphDef::decode(bytes).map_err(|source| TfImportError::Decode {
            path: path.to_owned(),
            size: bytes.len(),
            source,
        })?;
        if graph.node.is_empty() {
            return Err(TfImportError::EmptyGraph {
                path: path.to_owned(),
            });
        }
        let mut index = HashMap::with_capacity(graph.node.len());
        for (i, node) in graph.node.iter().enumerate() {
            if index.insert(node.name.clone(), i).is_some() {
                return Err(TfImportError::DuplicateNode {
                    path: path.to_owned(),
                    name: node.name.clone(),
                });
            }
        }
        for (i, node) in graph.node.iter().enumerate() {
            for input in &node.input {
                if !index.contains_key(input_node(input)) {
                    return Err(TfImportError::DanglingInput {
                        path: path.to_owned(),
                        node: node.name.clone(),
                        index: i,
                        input: input.clone(),
                    });
                }
            }
        }
        Ok(Self {
            path: path.to_owned(),
            sha256: format!("{:x}", Sha256::digest(bytes)),
            bytes: bytes.len() as u64,
            nodes: graph.node,
            index,
        })
    }

    /// The node with this name, if any.
    pub fn node(&self, name: &str) -> Option<&NodeDef> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// Fails with [`TfImportError::MissingNode`] unless every name is a node of the graph.
    pub fn require(&self, names: &[String]) -> Result<(), TfImportError> {
        match names.iter().find(|n| self.node(n).is_none()) {
            Some(name) => Err(TfImportError::MissingNode {
                path: self.path.clone(),
                name: name.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The nodes that `outputs` depend on (themselves included), each after all of its inputs;
    /// the inputs of nodes in `stop_at` are not followed. Control inputs (`^node`) are not
    /// followed either: they order execution but carry no data.
    pub fn trace(
        &self,
        outputs: &[String],
        stop_at: &[String],
    ) -> Result<Vec<usize>, TfImportError> {
        self.require(outputs)?;
        let stop: HashSet<&str> = stop_at.iter().map(String::as_str).collect();
        let mut order = Vec::new();
        let mut done = vec![false; self.nodes.len()];
        let mut entered = vec![false; self.nodes.len()];
        // Iterative post-order DFS: a graph can be thousands of nodes deep.
        let mut stack: Vec<(usize, bool)> = outputs
            .iter()
            .rev()
            .filter_map(|name| self.index.get(name).map(|&i| (i, false)))
            .collect();
        while let Some((i, children_done)) = stack.pop() {
            if done[i] {
                continue;
            }
            if children_done {
                done[i] = true;
                order.push(i);
                continue;
            }
            if entered[i] {
                // A cycle (a while loop's back edge): the node is already being expanded.
                continue;
            }
            entered[i] = true;
            stack.push((i, true));
            let node = &self.nodes[i];
            if stop.contains(node.name.as_str()) {
                continue;
            }
            for input in node.input.iter().rev() {
                if input.starts_with('^') {
                    continue;
                }
                let j = self.index[input_node(input)];
                if !done[j] {
                    stack.push((j, false));
                }
            }
        }
        Ok(order)
    }
}

/// The node name an input refers to: `name`, `name:1` and `^name` all refer to `name`.
pub fn input_node(input: &str) -> &str {
    let name = input.strip_prefix('^').unwrap_or(input);
    match name.rsplit_once(':') {
        Some((node, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => node,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, op: &str, inputs: &[&str]) -> NodeDef {
        NodeDef {
            name: name.into(),
            op: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            attr: Default::default(),
        }
    }

    fn encode(nodes: Vec<NodeDef>) -> Vec<u8> {
        GraphDef { node: nodes }.encode_to_vec()
    }

    fn path() -> PathBuf {
        PathBuf::from("synthetic.pb")
    }

    #[test]
    fn input_names_lose_ports_and_control_marks() {
        assert_eq!(input_node("a/b"), "a/b");
        assert_eq!(input_node("a/b:1"), "a/b");
        assert_eq!(input_node("^a/b"), "a/b");
        assert_eq!(input_node("weird:name"), "weird:name");
    }

    #[test]
    fn trace_lists_inputs_before_readers_and_stops_where_told() {
        let bytes = encode(vec![
            node("out", "Add", &["b", "c"]),
            node("c", "Relu", &["a"]),
            node("b", "Relu", &["a", "^x"]),
            node("a", "Mul", &["in", "k"]),
            node("k", "Const", &[]),
            node("in", "Placeholder", &[]),
            node("x", "NoOp", &[]),
        ]);
        let g = FrozenGraph::from_bytes(&bytes, &path()).unwrap();
        let names = |order: Vec<usize>| -> Vec<String> {
            order.into_iter().map(|i| g.nodes[i].name.clone()).collect()
        };
        let all = names(g.trace(&["out".into()], &[]).unwrap());
        assert_eq!(all, ["in", "k", "a", "b", "c", "out"]);
        let cut = names(g.trace(&["out".into()], &["a".into()]).unwrap());
        assert_eq!(cut, ["a", "b", "c", "out"]);
    }

    #[test]
    fn trace_survives_a_loop() {
        let bytes = encode(vec![
            node("merge", "Merge", &["enter", "next"]),
            node("next", "NextIteration", &["merge"]),
            node("enter", "Enter", &[]),
        ]);
        let g = FrozenGraph::from_bytes(&bytes, &path()).unwrap();
        let order = g.trace(&["merge".into()], &[]).unwrap();
        assert_eq!(order.len(), 3);
    }

    #[test]
    fn dangling_input_is_named() {
        let bytes = encode(vec![node("a", "Relu", &["gone:0"])]);
        let err = FrozenGraph::from_bytes(&bytes, &path()).unwrap_err();
        assert!(
            matches!(&err, TfImportError::DanglingInput { node, input, .. } if node == "a" && input == "gone:0"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let bytes = encode(vec![node("a", "Const", &[]), node("a", "Const", &[])]);
        let err = FrozenGraph::from_bytes(&bytes, &path()).unwrap_err();
        assert!(matches!(err, TfImportError::DuplicateNode { .. }), "{err}");
    }

    #[test]
    fn empty_input_is_an_empty_graph() {
        let err = FrozenGraph::from_bytes(&[], &path()).unwrap_err();
        assert!(matches!(err, TfImportError::EmptyGraph { .. }), "{err}");
    }

    #[test]
    fn truncated_synthetic_graph_is_a_decode_error() {
        let bytes = encode(vec![
            node("first_node", "Placeholder", &[]),
            node("second", "Relu", &["first_node"]),
        ]);
        // Cut inside the second node's name: the outer length prefix promises more bytes.
        let cut = &bytes[..bytes.len() - 12];
        let err = FrozenGraph::from_bytes(cut, &path()).unwrap_err();
        assert!(matches!(err, TfImportError::Decode { .. }), "{err}");
        assert!(err.to_string().contains("synthetic.pb"), "{err}");
    }

    #[test]
    fn garbage_is_a_decode_error() {
        // Field 1 with wire type 7 does not exist in protobuf.
        let err = FrozenGraph::from_bytes(&[0x0f, 0xff, 0xff, 0xff], &path()).unwrap_err();
        assert!(matches!(err, TfImportError::Decode { .. }), "{err}");
    }

    #[test]
    fn length_prefix_beyond_the_input_is_refused_without_allocating_it() {
        // Field 1 (node), length-delimited, length 2^62: prost must refuse, not reserve it.
        let mut bytes = vec![0x0a];
        prost::encoding::encode_varint(1 << 62, &mut bytes);
        let err = FrozenGraph::from_bytes(&bytes, &path()).unwrap_err();
        assert!(matches!(err, TfImportError::Decode { .. }), "{err}");
    }

    #[test]
    fn missing_required_node_is_named() {
        let bytes = encode(vec![node("a", "Const", &[])]);
        let g = FrozenGraph::from_bytes(&bytes, &path()).unwrap();
        let err = g.require(&["detection_boxes".into()]).unwrap_err();
        assert!(err.to_string().contains("detection_boxes"), "{err}");
    }
}
