//! A frame's task result and its wire encoding (the reply payload of a status-0 reply, see
//! `docs/protocol.md`, "Result payload").
//!
//! One encoding serves every task the edge server runs, so that a server holding several models
//! answers each agent in the same format: a version byte, a kind byte, then either a
//! classification or a count-prefixed list of fixed-size detection records. Every length is
//! checked before anything is allocated, and every value before it is accepted: a payload comes
//! from another process and is never trusted.

/// Version of the result encoding (first byte of every payload).
pub const RESULT_VERSION: u8 = 1;
/// Kind byte of a classification.
pub const KIND_CLASS: u8 = 0;
/// Kind byte of a detection list.
pub const KIND_DETECTIONS: u8 = 1;
/// Most detections one result may carry (the SSD detector keeps at most 100 after NMS).
pub const MAX_DETECTIONS: usize = 256;
/// Bytes of a classification payload: version, kind, class (u32), confidence (f32).
pub const CLASS_PAYLOAD_LEN: usize = 2 + 4 + 4;
/// Bytes before the detection records: version, kind, count (u16).
pub const DETECTIONS_PREFIX_LEN: usize = 2 + 2;
/// Bytes of one detection record: class id (u16), score and four box edges (f32 each).
pub const DETECTION_RECORD_LEN: usize = 2 + 4 * 5;
/// Largest payload this encoding produces (a full detection list).
pub const MAX_RESULT_LEN: usize = DETECTIONS_PREFIX_LEN + MAX_DETECTIONS * DETECTION_RECORD_LEN;
/// Largest magnitude accepted for a normalised box edge. Boxes are not clipped to the frame,
/// so edges may lie a little outside [0, 1]; anything this far out is garbage, not a box.
pub const MAX_BOX_EDGE: f32 = 16.0;

/// A classification: the class and the model's confidence in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Predicted class index.
    pub class: u32,
    /// Probability the model gives that class, in [0, 1].
    pub confidence: f32,
}

/// One detected object. The box is in units of the frame's width and height (0 = left or top
/// edge, 1 = right or bottom edge), so the server needs no frame size; multiply by the frame's
/// size for pixels. Edges are not clipped to the frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectedObject {
    /// Class id in the model's label map (COCO ids 1–90 for the SSD detector).
    pub class_id: u16,
    /// Score in [0, 1].
    pub score: f32,
    /// Left edge, fraction of the frame's width.
    pub x_min: f32,
    /// Top edge, fraction of the frame's height.
    pub y_min: f32,
    /// Right edge, fraction of the frame's width (≥ `x_min`).
    pub x_max: f32,
    /// Bottom edge, fraction of the frame's height (≥ `y_min`).
    pub y_max: f32,
}

impl DetectedObject {
    /// Intersection over union with `other` (0 when either box is empty).
    pub fn iou(&self, other: &DetectedObject) -> f32 {
        let w = (self.x_max.min(other.x_max) - self.x_min.max(other.x_min)).max(0.0);
        let h = (self.y_max.min(other.y_max) - self.y_min.max(other.y_min)).max(0.0);
        let inter = w * h;
        let area = |d: &DetectedObject| (d.x_max - d.x_min) * (d.y_max - d.y_min);
        let union = area(self) + area(other) - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// What the model answered for one frame, locally or from the edge server.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskResult {
    /// An image classification.
    Class(Prediction),
    /// Object detections, best first.
    Detections(Vec<DetectedObject>),
}

/// Why a result payload was rejected, or could not be encoded. Offsets are bytes from the
/// payload's start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResultError {
    /// The payload ended inside a field.
    #[error("result payload ends inside {field} at offset {offset}: {len} bytes in all")]
    Truncated {
        /// The field.
        field: &'static str,
        /// Where the field starts.
        offset: usize,
        /// Length of the payload.
        len: usize,
    },
    /// The version byte is not [`RESULT_VERSION`].
    #[error("result payload version {found} at offset 0, expected {RESULT_VERSION}")]
    Version {
        /// The version found.
        found: u8,
    },
    /// The kind byte is unknown.
    #[error("result payload kind {found} at offset 1 is unknown")]
    Kind {
        /// The kind found.
        found: u8,
    },
    /// More detections than [`MAX_DETECTIONS`].
    #[error("{count} detections (at offset 2), at most {MAX_DETECTIONS} allowed")]
    TooManyDetections {
        /// The count announced (or given to the encoder).
        count: usize,
    },
    /// The payload's length disagrees with what its fields announce.
    #[error("result payload of {found} bytes, its fields announce {expected}")]
    Length {
        /// Length the fields imply.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// A value outside its range (non-finite, a score outside [0, 1], a box edge beyond
    /// [`MAX_BOX_EDGE`] or an inverted box).
    #[error("result payload field {field} at offset {offset} has invalid value {value}")]
    Value {
        /// The field (for detections, `detection[i].<name>`).
        field: String,
        /// Where the field starts.
        offset: usize,
        /// The value.
        value: f32,
    },
}

impl TaskResult {
    /// Encodes the result as a reply payload. Fails on more than [`MAX_DETECTIONS`] detections
    /// and on values the decoder would reject, so that a server never sends a payload that its
    /// agents refuse.
    pub fn encode(&self) -> Result<Vec<u8>, ResultError> {
        match self {
            TaskResult::Class(p) => {
                check_unit("confidence", 6, p.confidence)?;
                let mut out = Vec::with_capacity(CLASS_PAYLOAD_LEN);
                out.extend_from_slice(&[RESULT_VERSION, KIND_CLASS]);
                out.extend_from_slice(&p.class.to_be_bytes());
                out.extend_from_slice(&p.confidence.to_be_bytes());
                Ok(out)
            }
            TaskResult::Detections(list) => {
                if list.len() > MAX_DETECTIONS {
                    return Err(ResultError::TooManyDetections { count: list.len() });
                }
                let mut out =
                    Vec::with_capacity(DETECTIONS_PREFIX_LEN + list.len() * DETECTION_RECORD_LEN);
                out.extend_from_slice(&[RESULT_VERSION, KIND_DETECTIONS]);
                out.extend_from_slice(&(list.len() as u16).to_be_bytes());
                for (i, d) in list.iter().enumerate() {
                    check_detection(i, DETECTIONS_PREFIX_LEN + i * DETECTION_RECORD_LEN, d)?;
                    out.extend_from_slice(&d.class_id.to_be_bytes());
                    for v in [d.score, d.x_min, d.y_min, d.x_max, d.y_max] {
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                }
                Ok(out)
            }
        }
    }

    /// Decodes a reply payload, checking its length against the announced count before
    /// allocating and every value against its range.
    pub fn decode(payload: &[u8]) -> Result<TaskResult, ResultError> {
        let len = payload.len();
        let truncated = |field, offset| ResultError::Truncated { field, offset, len };
        let version = *payload.first().ok_or(truncated("version", 0))?;
        if version != RESULT_VERSION {
            return Err(ResultError::Version { found: version });
        }
        let kind = *payload.get(1).ok_or(truncated("kind", 1))?;
        match kind {
            KIND_CLASS => {
                if len != CLASS_PAYLOAD_LEN {
                    return Err(ResultError::Length {
                        expected: CLASS_PAYLOAD_LEN,
                        found: len,
                    });
                }
                let class = u32::from_be_bytes(array(payload, 2));
                let confidence = f32::from_be_bytes(array(payload, 6));
                check_unit("confidence", 6, confidence)?;
                Ok(TaskResult::Class(Prediction { class, confidence }))
            }
            KIND_DETECTIONS => {
                let count_bytes: [u8; 2] = payload
                    .get(2..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(truncated("detection count", 2))?;
                let count = usize::from(u16::from_be_bytes(count_bytes));
                if count > MAX_DETECTIONS {
                    return Err(ResultError::TooManyDetections { count });
                }
                let expected = DETECTIONS_PREFIX_LEN + count * DETECTION_RECORD_LEN;
                if len != expected {
                    return Err(ResultError::Length {
                        expected,
                        found: len,
                    });
                }
                let list = payload[DETECTIONS_PREFIX_LEN..]
                    .chunks_exact(DETECTION_RECORD_LEN)
                    .enumerate()
                    .map(|(i, r)| {
                        let f = |at: usize| f32::from_be_bytes(array(r, at));
                        let d = DetectedObject {
                            class_id: u16::from_be_bytes(array(r, 0)),
                            score: f(2),
                            x_min: f(6),
                            y_min: f(10),
                            x_max: f(14),
                            y_max: f(18),
                        };
                        check_detection(i, DETECTIONS_PREFIX_LEN + i * DETECTION_RECORD_LEN, &d)?;
                        Ok(d)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(TaskResult::Detections(list))
            }
            found => Err(ResultError::Kind { found }),
        }
    }

    /// Whether the result is right for `label` — only a classification can be checked against
    /// a class label; `None` for detections or when there is no label.
    pub fn correct_for(&self, label: Option<u32>) -> Option<bool> {
        match (self, label) {
            (TaskResult::Class(p), Some(l)) => Some(p.class == l),
            _ => None,
        }
    }

    /// The number of detections (0 for a classification).
    pub fn detection_count(&self) -> usize {
        match self {
            TaskResult::Class(_) => 0,
            TaskResult::Detections(d) => d.len(),
        }
    }
}

/// `N` bytes at `at`; callers have checked the length.
fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

fn check_unit(field: &str, offset: usize, v: f32) -> Result<(), ResultError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ResultError::Value {
            field: field.to_owned(),
            offset,
            value: v,
        })
    }
}

fn check_detection(i: usize, offset: usize, d: &DetectedObject) -> Result<(), ResultError> {
    check_unit(&format!("detection[{i}].score"), offset + 2, d.score)?;
    let edges = [
        ("x_min", d.x_min),
        ("y_min", d.y_min),
        ("x_max", d.x_max),
        ("y_max", d.y_max),
    ];
    for (j, (name, v)) in edges.into_iter().enumerate() {
        if !(v.is_finite() && v.abs() <= MAX_BOX_EDGE) {
            return Err(ResultError::Value {
                field: format!("detection[{i}].{name}"),
                offset: offset + 6 + 4 * j,
                value: v,
            });
        }
    }
    for (name, lo, hi, at) in [
        ("x_max", d.x_min, d.x_max, 14),
        ("y_max", d.y_min, d.y_max, 18),
    ] {
        if hi < lo {
            return Err(ResultError::Value {
                field: format!("detection[{i}].{name} (below its minimum edge)"),
                offset: offset + at,
                value: hi,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn person(score: f32) -> DetectedObject {
        DetectedObject {
            class_id: 1,
            score,
            x_min: 0.1,
            y_min: 0.2,
            x_max: 0.3,
            y_max: 0.9,
        }
    }

    #[test]
    fn classification_round_trips_in_ten_bytes() {
        let r = TaskResult::Class(Prediction {
            class: 7,
            confidence: 0.25,
        });
        let bytes = r.encode().unwrap();
        assert_eq!(bytes.len(), CLASS_PAYLOAD_LEN);
        assert_eq!(&bytes[..2], &[RESULT_VERSION, KIND_CLASS]);
        assert_eq!(TaskResult::decode(&bytes).unwrap(), r);
        assert_eq!(r.correct_for(Some(7)), Some(true));
        assert_eq!(r.correct_for(Some(3)), Some(false));
    }

    #[test]
    fn detections_round_trip_with_count_prefix_and_fixed_records() {
        let r = TaskResult::Detections(vec![person(0.9), person(0.4)]);
        let bytes = r.encode().unwrap();
        assert_eq!(
            bytes.len(),
            DETECTIONS_PREFIX_LEN + 2 * DETECTION_RECORD_LEN
        );
        assert_eq!(&bytes[2..4], &[0, 2]);
        assert_eq!(TaskResult::decode(&bytes).unwrap(), r);
        assert_eq!(r.detection_count(), 2);
        assert_eq!(r.correct_for(Some(1)), None);
        let empty = TaskResult::Detections(Vec::new());
        assert_eq!(TaskResult::decode(&empty.encode().unwrap()).unwrap(), empty);
    }

    #[test]
    fn a_full_list_fits_the_bound_and_one_more_is_refused() {
        let full = TaskResult::Detections(vec![person(0.5); MAX_DETECTIONS]);
        assert_eq!(full.encode().unwrap().len(), MAX_RESULT_LEN);
        let over = TaskResult::Detections(vec![person(0.5); MAX_DETECTIONS + 1]);
        assert_eq!(
            over.encode(),
            Err(ResultError::TooManyDetections {
                count: MAX_DETECTIONS + 1
            })
        );
    }

    #[test]
    fn hostile_payloads_get_typed_errors() {
        assert!(matches!(
            TaskResult::decode(&[]),
            Err(ResultError::Truncated {
                field: "version",
                ..
            })
        ));
        assert_eq!(
            TaskResult::decode(&[2, 0]),
            Err(ResultError::Version { found: 2 })
        );
        assert_eq!(
            TaskResult::decode(&[1, 9]),
            Err(ResultError::Kind { found: 9 })
        );
        assert!(matches!(
            TaskResult::decode(&[1, 1, 0]),
            Err(ResultError::Truncated {
                field: "detection count",
                offset: 2,
                ..
            })
        ));
        // The old 8-byte classification payload is refused, not misread.
        assert!(TaskResult::decode(&[7, 0, 0, 0, 0, 0, 128, 62]).is_err());
        // A count of 65535 with 4 bytes of payload: refused on the count, nothing allocated.
        assert_eq!(
            TaskResult::decode(&[1, 1, 0xff, 0xff]),
            Err(ResultError::TooManyDetections { count: 65535 })
        );
        // A count that promises more records than arrived, and trailing bytes.
        let mut two = TaskResult::Detections(vec![person(0.9), person(0.4)])
            .encode()
            .unwrap();
        assert_eq!(
            TaskResult::decode(&two[..two.len() - 1]),
            Err(ResultError::Length {
                expected: 48,
                found: 47
            })
        );
        two.push(0);
        assert!(matches!(
            TaskResult::decode(&two),
            Err(ResultError::Length { .. })
        ));
        // A NaN score, an infinite edge, an inverted box.
        for (at, bits, field) in [
            (4 + 2, f32::NAN.to_bits(), "detection[0].score"),
            (4 + 22 + 10, f32::INFINITY.to_bits(), "detection[1].y_min"),
            (4 + 14, 0.05f32.to_bits(), "detection[0].x_max"),
        ] {
            let mut bytes = TaskResult::Detections(vec![person(0.9), person(0.4)])
                .encode()
                .unwrap();
            bytes[at..at + 4].copy_from_slice(&bits.to_be_bytes());
            match TaskResult::decode(&bytes) {
                Err(ResultError::Value { field: f, .. }) => assert!(f.starts_with(field), "{f}"),
                other => panic!("{field}: {other:?}"),
            }
        }
        let bad_confidence = [1, 0, 0, 0, 0, 1, 0x40, 0, 0, 0];
        assert!(matches!(
            TaskResult::decode(&bad_confidence),
            Err(ResultError::Value { offset: 6, .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_accepted_ones_round_trip(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            if let Ok(r) = TaskResult::decode(&bytes) {
                prop_assert_eq!(r.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn valid_detection_lists_round_trip(
            list in proptest::collection::vec(
                (any::<u16>(), 0.0f32..=1.0, -1.0f32..2.0, -1.0f32..2.0, 0.0f32..1.0, 0.0f32..1.0),
                0..40,
            ),
        ) {
            let r = TaskResult::Detections(
                list.into_iter()
                    .map(|(class_id, score, x, y, w, h)| DetectedObject {
                        class_id, score, x_min: x, y_min: y, x_max: x + w, y_max: y + h,
                    })
                    .collect(),
            );
            prop_assert_eq!(TaskResult::decode(&r.encode().unwrap()).unwrap(), r);
        }
    }
}
