//! Several models on one edge server: the frame's model id picks the handler.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::handler::{FrameHandler, HandlerError, ReceivedFrame};

/// A second handler was registered under a model id that is already taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model id {model_id:08x} ({name}) is already served by {existing}")]
pub struct DuplicateModel {
    /// The model id.
    pub model_id: u32,
    /// Name of the handler being added.
    pub name: String,
    /// Name of the handler that holds the id.
    pub existing: String,
}

/// A [`FrameHandler`] that holds one handler per model id and passes each frame to the one its
/// header names; a frame for a model the server does not hold gets a handler error naming the
/// models it does hold. Agents running different models can share one server this way.
#[derive(Clone, Default)]
pub struct ModelRegistry {
    handlers: BTreeMap<u32, (String, Arc<dyn FrameHandler>)>,
}

impl std::fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.handlers
                    .iter()
                    .map(|(id, (name, _))| (format!("{id:08x}"), name)),
            )
            .finish()
    }
}

impl ModelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves frames whose model id is `model_id` with `handler`; `name` is for logs and
    /// errors.
    pub fn insert(
        &mut self,
        model_id: u32,
        name: impl Into<String>,
        handler: Arc<dyn FrameHandler>,
    ) -> Result<(), DuplicateModel> {
        let name = name.into();
        if let Some((existing, _)) = self.handlers.get(&model_id) {
            return Err(DuplicateModel {
                model_id,
                name,
                existing: existing.clone(),
            });
        }
        self.handlers.insert(model_id, (name, handler));
        Ok(())
    }

    /// The models served, as (model id, name), in id order.
    pub fn models(&self) -> impl Iterator<Item = (u32, &str)> {
        self.handlers
            .iter()
            .map(|(id, (name, _))| (*id, name.as_str()))
    }

    /// Number of models served.
    pub fn len(&self) -> usize {
        self.handlers.len()
    }

    /// Whether no model is served.
    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }
}

impl FrameHandler for ModelRegistry {
    fn handle(&self, frame: &ReceivedFrame) -> Result<Vec<u8>, HandlerError> {
        match self.handlers.get(&frame.model_id) {
            Some((_, handler)) => handler.handle(frame),
            None => {
                let served: Vec<String> = self
                    .models()
                    .map(|(id, name)| format!("{id:08x} ({name})"))
                    .collect();
                Err(HandlerError::new(format!(
                    "frame {} is for model {:08x}; this server runs {}",
                    frame.frame_id,
                    frame.model_id,
                    if served.is_empty() {
                        "no model".to_owned()
                    } else {
                        served.join(", ")
                    }
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(model_id: u32) -> ReceivedFrame {
        ReceivedFrame {
            peer: "127.0.0.1:1".parse().unwrap(),
            frame_id: 9,
            model_id,
            layers_announced: 1,
            header: Bytes::new(),
            layers: vec![Bytes::from_static(b"x")],
        }
    }

    #[test]
    fn frames_go_to_their_models_handler_and_unknown_ids_are_refused() {
        let mut r = ModelRegistry::new();
        r.insert(1, "one", Arc::new(|_: &ReceivedFrame| Ok(vec![1])))
            .unwrap();
        r.insert(2, "two", Arc::new(|_: &ReceivedFrame| Ok(vec![2])))
            .unwrap();
        assert_eq!(r.handle(&frame(1)).unwrap(), vec![1]);
        assert_eq!(r.handle(&frame(2)).unwrap(), vec![2]);
        let e = r.handle(&frame(3)).unwrap_err();
        assert!(
            e.message.contains("00000003") && e.message.contains("00000001 (one)"),
            "{e}"
        );
        let dup = r
            .insert(2, "again", Arc::new(|_: &ReceivedFrame| Ok(vec![])))
            .unwrap_err();
        assert_eq!(dup.existing, "two");
        assert_eq!(r.len(), 2);
    }
}
