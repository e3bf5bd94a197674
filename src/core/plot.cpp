// Canvas, font, ticks and the two charts of ipa/core/plot.h (the PNG encoder is png.cpp, the
// trainer's curves training_curves.cpp).

#include "ipa/core/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "font5x7.h"
#include "ipa/core/error.h"

namespace ipa::plot {

Rgb palette(std::size_t i) {
    static constexpr Rgb kTab10[] = {{31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
                                     {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
    return kTab10[i % 10];
}

int text_width(std::string_view text, int scale) { return static_cast<int>(text.size()) * 6 * scale; }

// ---- canvas ----

Canvas::Canvas(int width, int height, Rgb background) : width_(width), height_(height) {
    if (width <= 0 || height <= 0 || width > 32768 || height > 32768)
        throw Error(fmt::format("plot: bad canvas size {} x {}", width, height));
    rgb_.resize(static_cast<std::size_t>(width) * height * 3);
    for (std::size_t i = 0; i < rgb_.size(); i += 3)
        rgb_[i] = background.r, rgb_[i + 1] = background.g, rgb_[i + 2] = background.b;
}

Rgb Canvas::pixel(int x, int y) const {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) throw Error(fmt::format("plot: pixel ({}, {}) outside", x, y));
    const auto* p = &rgb_[(static_cast<std::size_t>(y) * width_ + x) * 3];
    return {p[0], p[1], p[2]};
}

void Canvas::set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    auto* p = &rgb_[(static_cast<std::size_t>(y) * width_ + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
}

void Canvas::blend(int x, int y, Rgb c, double coverage) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_ || !(coverage > 0)) return;
    const double a = std::min(1.0, coverage);
    auto* p = &rgb_[(static_cast<std::size_t>(y) * width_ + x) * 3];
    const uint8_t src[3] = {c.r, c.g, c.b};
    for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(std::lround(src[k] * a + p[k] * (1.0 - a)));
}

void Canvas::fill_rect(int x, int y, int w, int h, Rgb c) {
    for (int yy = std::max(0, y); yy < std::min(height_, y + h); ++yy)
        for (int xx = std::max(0, x); xx < std::min(width_, x + w); ++xx) set(xx, yy, c);
}

void Canvas::rect_outline(int x, int y, int w, int h, Rgb c) {
    fill_rect(x, y, w, 1, c);
    fill_rect(x, y + h - 1, w, 1, c);
    fill_rect(x, y, 1, h, c);
    fill_rect(x + w - 1, y, 1, h, c);
}

namespace {

double segment_distance(double px, double py, double x0, double y0, double x1, double y1) {
    const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    const double t = len2 > 0 ? std::clamp(((px - x0) * dx + (py - y0) * dy) / len2, 0.0, 1.0) : 0.0;
    return std::hypot(px - (x0 + t * dx), py - (y0 + t * dy));
}

}  // namespace

void Canvas::line(double x0, double y0, double x1, double y1, Rgb c, double width, bool antialias) {
    polyline({{x0, y0}, {x1, y1}}, c, width, antialias);
}

void Canvas::polyline(const std::vector<std::pair<double, double>>& points, Rgb c, double width, bool antialias) {
    // Coverage is the maximum over the segments (joints are not blended twice), then blended once.
    const double half = std::max(0.5, width / 2);
    std::vector<float> cover(static_cast<std::size_t>(width_) * height_, 0.f);
    int bx0 = width_, by0 = height_, bx1 = -1, by1 = -1;
    for (std::size_t i = 0; i + 1 < points.size(); ++i) {
        const auto [x0, y0] = points[i];
        const auto [x1, y1] = points[i + 1];
        if (!std::isfinite(x0 + y0 + x1 + y1)) continue;
        const int xa = std::max(0, static_cast<int>(std::floor(std::min(x0, x1) - half - 1)));
        const int xb = std::min(width_ - 1, static_cast<int>(std::ceil(std::max(x0, x1) + half + 1)));
        const int ya = std::max(0, static_cast<int>(std::floor(std::min(y0, y1) - half - 1)));
        const int yb = std::min(height_ - 1, static_cast<int>(std::ceil(std::max(y0, y1) + half + 1)));
        for (int y = ya; y <= yb; ++y)
            for (int x = xa; x <= xb; ++x) {
                const double d = segment_distance(x, y, x0, y0, x1, y1);
                const double cov = antialias ? std::clamp(half + 0.5 - d, 0.0, 1.0) : (d <= half ? 1.0 : 0.0);
                auto& v = cover[static_cast<std::size_t>(y) * width_ + x];
                v = std::max(v, static_cast<float>(cov));
            }
        bx0 = std::min(bx0, xa), by0 = std::min(by0, ya), bx1 = std::max(bx1, xb), by1 = std::max(by1, yb);
    }
    for (int y = by0; y <= by1; ++y)
        for (int x = bx0; x <= bx1; ++x) blend(x, y, c, cover[static_cast<std::size_t>(y) * width_ + x]);
}

void Canvas::text(int x, int y, std::string_view s, Rgb c, int scale) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        const unsigned char ch = static_cast<unsigned char>(s[i]);
        const auto& glyph = detail::kFont5x7[(ch >= 32 && ch <= 126 ? ch : '?') - 32];
        const int gx = x + static_cast<int>(i) * 6 * scale;
        for (int col = 0; col < 5; ++col)
            for (int row = 0; row < 7; ++row)
                if (glyph[col] >> row & 1) fill_rect(gx + col * scale, y + row * scale, scale, scale, c);
    }
}

void Canvas::blit(const Canvas& src, int x, int y) {
    for (int yy = 0; yy < src.height(); ++yy)
        for (int xx = 0; xx < src.width(); ++xx) set(x + xx, y + yy, src.pixel(xx, yy));
}

// ---- ticks ----

std::vector<double> nice_ticks(double lo, double hi, int target) {
    if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
    if (lo > hi) std::swap(lo, hi);
    if (hi - lo <= std::abs(hi) * 1e-12) {  // one value: a small range around it
        const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.05;
        lo -= pad, hi += pad;
    }
    const double raw = (hi - lo) / std::max(1, target);
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double norm = raw / mag;
    const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;  // the nearest 1-2-5
    const auto first = static_cast<long long>(std::floor(lo / step + 1e-9));
    const auto last = static_cast<long long>(std::ceil(hi / step - 1e-9));
    std::vector<double> ticks;
    for (long long k = first; k <= last && ticks.size() < 200; ++k) ticks.push_back(static_cast<double>(k) * step);
    return ticks;
}

std::string tick_label(double value, double spacing) {
    spacing = std::abs(spacing);
    if (!std::isfinite(value)) return "nan";
    if (spacing > 0 && std::abs(value) < spacing * 1e-6) return "0";
    const int spacing_exp = spacing > 0 ? static_cast<int>(std::floor(std::log10(spacing) + 1e-9)) : 0;
    if (std::abs(value) >= 1e5 || (spacing > 0 && spacing < 1e-3)) {
        const int exp = static_cast<int>(std::floor(std::log10(std::abs(value)) + 1e-9));
        const int digits = std::max(0, exp - spacing_exp);
        std::string mant = fmt::format("{:.{}f}", value / std::pow(10.0, exp), digits);
        if (mant.find('.') != std::string::npos) {
            while (mant.back() == '0') mant.pop_back();
            if (mant.back() == '.') mant.pop_back();
        }
        return fmt::format("{}e{}", mant, exp);
    }
    return fmt::format("{:.{}f}", value, std::max(0, -spacing_exp));
}

// ---- charts ----

namespace {

constexpr Rgb kGrid{228, 228, 228}, kAxis{110, 110, 110}, kInk{40, 40, 40};

std::string fit(const std::string& s, std::size_t max_chars) {
    return s.size() <= max_chars ? s : s.substr(0, max_chars - 2) + "..";
}

/// A linear map from [lo, hi] to pixels [p0, p1].
struct Scale {
    double lo, hi, p0, p1;
    double operator()(double v) const { return p0 + (v - lo) / (hi - lo) * (p1 - p0); }
};

void draw_title(Canvas& c, const std::string& title) {
    const auto t = fit(title, static_cast<std::size_t>(std::max(4, c.width() / 12)));
    c.text((c.width() - text_width(t, 2)) / 2, 6, t, kInk, 2);
}

/// Legend entries (swatch + name) in a box with its top-right corner at (right, top).
void draw_legend(Canvas& c, int right, int top, const std::vector<std::string>& names) {
    int w = 0;
    for (const auto& n : names) w = std::max(w, text_width(fit(n, 30)));
    w += 26;
    const int h = static_cast<int>(names.size()) * 12 + 6;
    c.fill_rect(right - w, top, w, h, kWhite);
    c.rect_outline(right - w, top, w, h, kGrid);
    for (std::size_t i = 0; i < names.size(); ++i) {
        const int y = top + 4 + static_cast<int>(i) * 12;
        c.fill_rect(right - w + 5, y + 2, 12, 4, palette(i));
        c.text(right - w + 21, y, fit(names[i], 30), kInk);
    }
}

std::pair<double, double> finite_range(const std::vector<double>& v, double lo, double hi) {
    for (double x : v)
        if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x);
    return {lo, hi};
}

double spacing_of(const std::vector<double>& ticks) { return ticks.size() > 1 ? ticks[1] - ticks[0] : 1.0; }

int max_label_width(const std::vector<double>& ticks) {
    int w = 0;
    for (double t : ticks) w = std::max(w, text_width(tick_label(t, spacing_of(ticks))));
    return w;
}

}  // namespace

Canvas LineChart::render(int width, int height) const {
    Canvas c(width, height);
    draw_title(c, title);
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (const auto& s : series) {
        std::tie(xlo, xhi) = finite_range(s.x, xlo, xhi);
        std::tie(ylo, yhi) = finite_range(s.y, ylo, yhi);
    }
    const int top = 30, bottom = height - 22 - (x_label.empty() ? 0 : 12);
    const auto yt = nice_ticks(ylo, yhi, std::max(2, (bottom - top) / 50));
    const int left = max_label_width(yt) + 12, right = width - 16;
    if (right - left < 20 || bottom - top < 20) throw Error(fmt::format("plot: {} x {} is too small", width, height));
    const auto xt = nice_ticks(xlo, xhi, std::max(2, (right - left) / 90));
    const Scale sx{xt.front(), xt.back(), double(left), double(right)},
        sy{yt.front(), yt.back(), double(bottom), double(top)};
    for (double t : yt) {
        const int py = static_cast<int>(std::lround(sy(t)));
        c.fill_rect(left, py, right - left, 1, kGrid);
        const auto l = tick_label(t, spacing_of(yt));
        c.text(left - 6 - text_width(l), py - 3, l, kInk);
    }
    for (double t : xt) {
        const int px = static_cast<int>(std::lround(sx(t)));
        c.fill_rect(px, top, 1, bottom - top, kGrid);
        const auto l = tick_label(t, spacing_of(xt));
        c.text(px - text_width(l) / 2, bottom + 6, l, kInk);
    }
    c.rect_outline(left, top, right - left + 1, bottom - top + 1, kAxis);
    if (!x_label.empty()) c.text((left + right - text_width(x_label)) / 2, bottom + 18, x_label, kInk);
    std::vector<std::string> names;
    for (std::size_t i = 0; i < series.size(); ++i) {
        const auto& s = series[i];
        std::vector<std::pair<double, double>> pts;
        for (std::size_t k = 0; k < std::min(s.x.size(), s.y.size()); ++k) pts.emplace_back(sx(s.x[k]), sy(s.y[k]));
        if (pts.size() == 1) pts.push_back(pts[0]);  // a single point draws as a dot
        c.polyline(pts, palette(i), 1.6);
        names.push_back(s.name);
    }
    if (series.size() > 1) draw_legend(c, right - 4, top + 4, names);
    return c;
}

Canvas BarChart::render(int width, int height) const {
    const int bar = 11, gap = 6, per = static_cast<int>(std::max<std::size_t>(1, series.size())) * bar + gap;
    const int legend = series.size() > 1 ? static_cast<int>(series.size()) * 12 + 10 : 0, top = 30 + legend;
    const int rows = static_cast<int>(labels.size());
    if (height <= 0) height = top + rows * per + 4 + 24 + (value_label.empty() ? 0 : 12);
    Canvas c(width, height);
    draw_title(c, title);
    double lo = 0, hi = 0;
    for (const auto& s : series) std::tie(lo, hi) = finite_range(s.values, lo, hi);
    const auto ticks = nice_ticks(lo, hi, std::max(2, width / 110));
    int left = 0;
    for (const auto& l : labels) left = std::max(left, text_width(fit(l, 28)));
    left += 12;
    const int right = width - 64, bottom = height - 24 - (value_label.empty() ? 0 : 12);
    if (right - left < 20 || bottom - top < rows) throw Error(fmt::format("plot: {} x {} is too small", width, height));
    const Scale sx{ticks.front(), ticks.back(), double(left), double(right)};
    for (double t : ticks) {
        const int px = static_cast<int>(std::lround(sx(t)));
        c.fill_rect(px, top, 1, bottom - top, kGrid);
        const auto l = tick_label(t, spacing_of(ticks));
        c.text(px - text_width(l) / 2, bottom + 6, l, kInk);
    }
    const int zero = static_cast<int>(std::lround(sx(0.0)));
    const double row_h = static_cast<double>(bottom - top) / std::max(1, rows);
    for (int r = 0; r < rows; ++r) {
        const int y = top + static_cast<int>(r * row_h + (row_h - per + gap) / 2);
        c.text(left - 6 - text_width(fit(labels[r], 28)), y + (per - gap) / 2 - 4, fit(labels[r], 28), kInk);
        for (std::size_t s = 0; s < series.size(); ++s) {
            const double v = r < static_cast<int>(series[s].values.size()) ? series[s].values[r] : NAN;
            const int by = y + static_cast<int>(s) * bar;
            if (!std::isfinite(v)) {
                c.text(zero + 3, by + 2, "n/a", kAxis);
                continue;
            }
            const int end = static_cast<int>(std::lround(sx(v)));
            c.fill_rect(std::min(zero, end), by, std::abs(end - zero) + 1, bar - 1, palette(s));
            c.text(std::max(zero, end) + 3, by + 2, fmt::format("{:.4g}", v), kInk);
        }
    }
    c.fill_rect(zero, top, 1, bottom - top, kAxis);
    c.rect_outline(left, top, right - left + 1, bottom - top + 1, kAxis);
    if (!value_label.empty()) c.text((left + right - text_width(value_label)) / 2, bottom + 18, value_label, kInk);
    std::vector<std::string> names;
    for (const auto& s : series) names.push_back(s.name);
    if (series.size() > 1) draw_legend(c, right, 28, names);
    return c;
}

Canvas tile(const std::vector<Canvas>& panels, int columns, Rgb background) {
    if (panels.empty() || columns <= 0) throw Error("plot: tile needs panels and columns > 0");
    int cw = 0, ch = 0;
    for (const auto& p : panels) cw = std::max(cw, p.width()), ch = std::max(ch, p.height());
    const int cols = std::min<int>(columns, static_cast<int>(panels.size()));
    const int rows = (static_cast<int>(panels.size()) + cols - 1) / cols;
    Canvas out(cols * cw, rows * ch, background);
    for (std::size_t i = 0; i < panels.size(); ++i)
        out.blit(panels[i], static_cast<int>(i) % cols * cw, static_cast<int>(i) / cols * ch);
    return out;
}

}  // namespace ipa::plot
