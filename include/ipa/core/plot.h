#pragma once

/// Dependency-free charts: an RGB canvas with (optionally anti-aliased) lines, rectangles and
/// a built-in 5x7 bitmap font; line and labelled bar charts with nice round ticks; panels tiled
/// into one image; and a PNG encoder of its own (filtered rows, a small fixed-Huffman deflate
/// with LZ77 matches, CRC-32, Adler-32). No OpenCV, no zlib: the trainer links it on machines
/// without -dev packages.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ipa::plot {

struct Rgb {
    uint8_t r = 0, g = 0, b = 0;
    bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
    bool operator!=(const Rgb& o) const { return !(*this == o); }
};

inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kBlack{0, 0, 0};

/// The i-th colour of a 10-colour palette (matplotlib's "tab10"), cycling.
Rgb palette(std::size_t i);

/// Glyph cell of the built-in font at `scale` 1: 6 x 8 pixels (5 x 7 glyph + spacing).
int text_width(std::string_view text, int scale = 1);
inline int text_height(int scale = 1) { return 8 * scale; }

class Canvas {
public:
    Canvas() = default;
    Canvas(int width, int height, Rgb background = kWhite);

    int width() const { return width_; }
    int height() const { return height_; }
    /// Row-major RGB bytes, width * height * 3.
    const std::vector<uint8_t>& rgb() const { return rgb_; }

    Rgb pixel(int x, int y) const;
    /// Pixels outside the canvas are ignored by every drawing call.
    void set(int x, int y, Rgb c);
    /// Mixes `c` over the pixel with weight `coverage` in [0, 1].
    void blend(int x, int y, Rgb c, double coverage);
    void fill_rect(int x, int y, int w, int h, Rgb c);
    void rect_outline(int x, int y, int w, int h, Rgb c);
    /// A line of `width` pixels between pixel-centre coordinates; anti-aliased by distance
    /// to the segment, or hard-edged.
    void line(double x0, double y0, double x1, double y1, Rgb c, double width = 1.0, bool antialias = true);
    /// Connected segments; a pixel takes the largest coverage of any segment (joints are not
    /// darkened). Segments with a non-finite end are left out (a gap).
    void polyline(const std::vector<std::pair<double, double>>& points, Rgb c, double width = 1.0,
                  bool antialias = true);
    /// Text with its top-left corner at (x, y); characters outside ASCII 32..126 draw as '?'.
    void text(int x, int y, std::string_view text, Rgb c, int scale = 1);
    /// Copies `src` with its top-left corner at (x, y).
    void blit(const Canvas& src, int x, int y);

private:
    int width_ = 0, height_ = 0;
    std::vector<uint8_t> rgb_;
};

/// Round tick positions (1, 2 or 5 x 10^k apart, about `target` of them) covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target = 5);
/// A tick label with as many digits as the tick spacing needs; scientific ("2.5e-4") for
/// very small or very large magnitudes.
std::string tick_label(double value, double spacing);

/// A named series of (x, y) points; non-finite y values leave a gap in the line.
struct Series {
    std::string name;
    std::vector<double> x, y;
};

/// Several series against x (e.g. the training step), y auto-ranged. A legend is drawn
/// when there is more than one series.
struct LineChart {
    std::string title, x_label;
    std::vector<Series> series;
    Canvas render(int width, int height) const;
};

/// Horizontal labelled bars (one row per label; one bar per series in each row, side by side;
/// a legend with more than one series). Non-finite values draw no bar.
struct BarSeries {
    std::string name;
    std::vector<double> values;  ///< one per label
};
struct BarChart {
    std::string title, value_label;
    std::vector<std::string> labels;
    std::vector<BarSeries> series;
    /// `height` 0: as tall as the rows need.
    Canvas render(int width, int height = 0) const;
};

/// Panels of equal cells (the largest panel's size), `columns` per row.
Canvas tile(const std::vector<Canvas>& panels, int columns, Rgb background = kWhite);

/// PNG bytes (8-bit RGB, per-row filter None/Sub/Up, zlib stream of a fixed-Huffman deflate).
std::string encode_png(const Canvas& canvas);
/// Writes encode_png(canvas) atomically; ipa::DataError naming the path on failure.
void write_png(const std::filesystem::path& path, const Canvas& canvas);

/// The checksums and the zlib stream the encoder uses (exposed for tests).
uint32_t crc32(const void* data, std::size_t size, uint32_t crc = 0);
uint32_t adler32(const void* data, std::size_t size, uint32_t adler = 1);
std::string zlib_compress(const void* data, std::size_t size);

/// One panel per quantity of a trainer metrics.jsonl (loss, gap, reward_accuracy, margin,
/// lr, grad_norm: those present) against step, written as a PNG. A later line for a step
/// replaces an earlier one (a resumed run); null values (NaN steps) leave gaps. Throws
/// ipa::DataError naming the file and the line for a missing file, a blank or corrupt line,
/// a line without a numeric `step`, a non-numeric metric, or no metric to plot.
void write_training_curves(const std::filesystem::path& metrics_jsonl, const std::filesystem::path& png_out);

}  // namespace ipa::plot
