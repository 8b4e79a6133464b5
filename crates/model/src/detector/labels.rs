//! Names of the COCO class ids the detector reports (the TF object detection API's
//! `mscoco_label_map`: ids 1–90 with ten ids unused).

/// Name of each id; `None` for the background (0) and the ten ids COCO does not use.
const NAMES: [Option<&str>; 91] = [
    None,
    Some("person"),
    Some("bicycle"),
    Some("car"),
    Some("motorcycle"),
    Some("airplane"),
    Some("bus"),
    Some("train"),
    Some("truck"),
    Some("boat"),
    Some("traffic light"),
    Some("fire hydrant"),
    None,
    Some("stop sign"),
    Some("parking meter"),
    Some("bench"),
    Some("bird"),
    Some("cat"),
    Some("dog"),
    Some("horse"),
    Some("sheep"),
    Some("cow"),
    Some("elephant"),
    Some("bear"),
    Some("zebra"),
    Some("giraffe"),
    None,
    Some("backpack"),
    Some("umbrella"),
    None,
    None,
    Some("handbag"),
    Some("tie"),
    Some("suitcase"),
    Some("frisbee"),
    Some("skis"),
    Some("snowboard"),
    Some("sports ball"),
    Some("kite"),
    Some("baseball bat"),
    Some("baseball glove"),
    Some("skateboard"),
    Some("surfboard"),
    Some("tennis racket"),
    Some("bottle"),
    None,
    Some("wine glass"),
    Some("cup"),
    Some("fork"),
    Some("knife"),
    Some("spoon"),
    Some("bowl"),
    Some("banana"),
    Some("apple"),
    Some("sandwich"),
    Some("orange"),
    Some("broccoli"),
    Some("carrot"),
    Some("hot dog"),
    Some("pizza"),
    Some("donut"),
    Some("cake"),
    Some("chair"),
    Some("couch"),
    Some("potted plant"),
    Some("bed"),
    None,
    Some("dining table"),
    None,
    None,
    Some("toilet"),
    None,
    Some("tv"),
    Some("laptop"),
    Some("mouse"),
    Some("remote"),
    Some("keyboard"),
    Some("cell phone"),
    Some("microwave"),
    Some("oven"),
    Some("toaster"),
    Some("sink"),
    Some("refrigerator"),
    None,
    Some("book"),
    Some("clock"),
    Some("vase"),
    Some("scissors"),
    Some("teddy bear"),
    Some("hair drier"),
    Some("toothbrush"),
];

/// The COCO name of a class id, if the id names a class.
pub fn coco_name(class_id: usize) -> Option<&'static str> {
    NAMES.get(class_id).copied().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eighty_named_ids_with_known_anchors() {
        assert_eq!(NAMES.iter().flatten().count(), 80);
        assert_eq!(coco_name(1), Some("person"));
        assert_eq!(coco_name(18), Some("dog"));
        assert_eq!(coco_name(90), Some("toothbrush"));
        assert_eq!(coco_name(12), None);
        assert_eq!(coco_name(0), None);
        assert_eq!(coco_name(91), None);
    }
}
