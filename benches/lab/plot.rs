//! The plot of apply and removal time against lab size, as SVG.

use std::fmt::Write;

use crate::SizeResult;
use crate::run::Samples;

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64, f64, f64)>,
}

fn series<'a>(
    sizes: &[SizeResult],
    name: &'a str,
    color: &'a str,
    get: impl Fn(&SizeResult) -> &Samples,
) -> Series<'a> {
    Series {
        name,
        color,
        points: sizes
            .iter()
            .filter_map(|s| {
                let x = get(s);
                Some((s.size as f64, x.median()?, x.min()?, x.max()?))
            })
            .collect(),
    }
}

/// A tick step of 1, 2 or 5 times a power of ten giving about five ticks.
fn step(max: f64) -> f64 {
    let raw = (max / 5.0).max(1e-9);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

fn panel(out: &mut String, x0: f64, title: &str, all: &[Series<'_>]) {
    let (w, h) = (400.0, 300.0);
    let (left, top) = (x0 + 60.0, 50.0);
    let xmax = all
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0, f64::max)
        .max(1.0);
    let ymax = all
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.3))
        .fold(0.0, f64::max)
        .max(0.001);
    let (xs, ys) = (step(xmax), step(ymax));
    let xtop = (xmax / xs).ceil() * xs;
    let ytop = (ymax / ys).ceil() * ys;
    let px = |x: f64| left + x / xtop * w;
    let py = |y: f64| top + h - y / ytop * h;
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="30" font-size="15" font-weight="bold" text-anchor="middle">{title}</text>"#,
        left + w / 2.0
    );
    let mut y = 0.0;
    while y <= ytop + ys / 2.0 {
        let _ = writeln!(
            out,
            "<line x1=\"{left:.1}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>\n<text x=\"{2:.1}\" y=\"{3:.1}\" font-size=\"11\" text-anchor=\"end\">{4}</text>",
            py(y),
            left + w,
            left - 6.0,
            py(y) + 4.0,
            trim(y)
        );
        y += ys;
    }
    let mut x = 0.0;
    while x <= xtop + xs / 2.0 {
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"#ddd\"/>\n<text x=\"{0:.1}\" y=\"{3:.1}\" font-size=\"11\" text-anchor=\"middle\">{4}</text>",
            px(x),
            top,
            top + h,
            top + h + 16.0,
            trim(x)
        );
        x += xs;
    }
    let _ = writeln!(
        out,
        "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#333\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">containers</text>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 {:.1} {:.1})\">seconds (median, min–max)</text>",
        left + w / 2.0,
        top + h + 36.0,
        x0 + 16.0,
        top + h / 2.0,
        x0 + 16.0,
        top + h / 2.0
    );
    for s in all {
        if s.points.is_empty() {
            continue;
        }
        let path: Vec<String> = s
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            path.join(" "),
            s.color
        );
        for p in &s.points {
            let _ = writeln!(
                out,
                r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{3}"/><circle cx="{0:.1}" cy="{4:.1}" r="3.5" fill="{3}"/>"#,
                px(p.0),
                py(p.2),
                py(p.3),
                s.color,
                py(p.1)
            );
        }
    }
    // The legend last, over the lines.
    let _ = writeln!(
        out,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"190\" height=\"{:.1}\" fill=\"white\" fill-opacity=\"0.85\"/>",
        left + 4.0,
        top + 4.0,
        all.len() as f64 * 18.0 + 4.0
    );
    for (i, s) in all.iter().enumerate() {
        let ly = top + 14.0 + i as f64 * 18.0;
        let _ = writeln!(
            out,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
            left + 10.0,
            left + 30.0,
            s.color,
            left + 36.0,
            ly + 4.0,
            s.name
        );
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

const BLUE: &str = "#1f77b4";
const GREEN: &str = "#2ca02c";
const RED: &str = "#d62728";

/// Two panels: apply, and removal, against lab size.
pub fn plot(sizes: &[SizeResult]) -> String {
    let mut out = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\" height=\"400\" viewBox=\"0 0 960 400\" font-family=\"sans-serif\">\n<rect width=\"960\" height=\"400\" fill=\"white\"/>\n",
    );
    panel(
        &mut out,
        0.0,
        "Apply: lab up and running",
        &[
            series(sizes, "benchscale apply", BLUE, |s| &s.bs_cold),
            series(sizes, "floor (bare API)", GREEN, |s| &s.floor_create),
            series(sizes, "docker-compose up -d", RED, |s| &s.compose_up),
        ],
    );
    panel(
        &mut out,
        480.0,
        "Removal: lab gone",
        &[
            series(sizes, "benchscale destroy", BLUE, |s| &s.bs_destroy),
            series(sizes, "floor (bare API)", GREEN, |s| &s.floor_remove),
            series(sizes, "docker-compose down -t 0", RED, |s| &s.compose_down),
        ],
    );
    out.push_str("</svg>\n");
    out
}

/// A plot of made-up numbers, for the self-check.
pub fn svg_for_check() -> String {
    let sizes: Vec<SizeResult> = [10usize, 30, 100]
        .into_iter()
        .map(|n| {
            let mut s = SizeResult {
                size: n,
                ..SizeResult::default()
            };
            for v in [1.0, 1.1, 1.2] {
                s.bs_cold.push(v * n as f64 / 10.0);
                s.floor_create.push(v * n as f64 / 12.0);
            }
            s
        })
        .collect();
    plot(&sizes)
}
