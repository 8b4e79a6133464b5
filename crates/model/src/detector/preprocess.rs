//! Input preprocessing of the frozen graph: `Preprocessor/map/while/ResizeImage/ResizeBilinear`
//! (TF1 `ResizeBilinear`, `align_corners = false`, no half-pixel centres) to 300×300, then
//! `Preprocessor/mul` and `Preprocessor/sub` (x·2/255 − 1).

/// Side of the square network input.
pub const INPUT_SIZE: usize = 300;

/// TF1's legacy bilinear resize of an interleaved RGB u8 image to `out_h`×`out_w`, as f32 planes
/// (3, out_h, out_w): output pixel (y, x) samples the source at (y·H/out_h, x·W/out_w).
pub fn resize_bilinear_tf1(
    rgb: &[u8],
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<f32> {
    let scale_y = height as f32 / out_h as f32;
    let scale_x = width as f32 / out_w as f32;
    // Per output column: left/right source columns and the right weight (computed once).
    let columns: Vec<(usize, usize, f32)> = (0..out_w)
        .map(|x| {
            let sx = x as f32 * scale_x;
            let x0 = (sx.floor() as usize).min(width - 1);
            (x0, (x0 + 1).min(width - 1), sx - x0 as f32)
        })
        .collect();
    let plane = out_h * out_w;
    let mut out = vec![0f32; 3 * plane];
    for y in 0..out_h {
        let sy = y as f32 * scale_y;
        let y0 = (sy.floor() as usize).min(height - 1);
        let y1 = (y0 + 1).min(height - 1);
        let wy = sy - y0 as f32;
        let top_row = &rgb[y0 * width * 3..(y0 + 1) * width * 3];
        let bottom_row = &rgb[y1 * width * 3..(y1 + 1) * width * 3];
        for (x, &(x0, x1, wx)) in columns.iter().enumerate() {
            for c in 0..3 {
                let tl = f32::from(top_row[x0 * 3 + c]);
                let tr = f32::from(top_row[x1 * 3 + c]);
                let bl = f32::from(bottom_row[x0 * 3 + c]);
                let br = f32::from(bottom_row[x1 * 3 + c]);
                let top = tl + (tr - tl) * wx;
                let bottom = bl + (br - bl) * wx;
                out[c * plane + y * out_w + x] = top + (bottom - top) * wy;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_exact_and_downscale_samples_top_left_aligned() {
        let rgb: Vec<u8> = (0..4 * 2 * 3).map(|i| i as u8).collect();
        let same = resize_bilinear_tf1(&rgb, 4, 2, 4, 2);
        // Channel 0 plane = red values in raster order.
        assert_eq!(&same[..8], &[0., 3., 6., 9., 12., 15., 18., 21.]);
        // 4×2 → 2×1: source (0, 0) and (0, 2), no half-pixel shift.
        let half = resize_bilinear_tf1(&rgb, 4, 2, 2, 1);
        assert_eq!(&half[..2], &[0., 6.]);
        // 2×1 → 4×1: x = 0, 0.5, 1, 1.5 → the last column clamps to the right neighbour.
        let up = resize_bilinear_tf1(&[0, 0, 0, 100, 0, 0], 2, 1, 4, 1);
        assert_eq!(&up[..4], &[0., 50., 100., 100.]);
    }
}
