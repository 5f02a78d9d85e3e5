//! Line charts as SVG (plotters), for the benchmarks' figures: app size on a logarithmic x
//! axis, one line per series.

use plotters::prelude::*;

/// Colours of the series, in order.
const COLOURS: [RGBColor; 3] =
    [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];

/// A chart of `lines` (name, points) titled `title`, as SVG text.
pub(super) fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[(&str, Vec<(f64, f64)>)],
) -> anyhow::Result<String> {
    let points = lines.iter().flat_map(|(_, points)| points);
    let (x_max, y_max) =
        points.fold((10.0_f64, 1.0_f64), |(x, y), (px, py)| (x.max(*px), y.max(*py)));
    let x_min = lines.iter().flat_map(|(_, p)| p).map(|p| p.0).fold(x_max, f64::min);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x_min..x_max * 1.2).log_scale(), 0.0..y_max * 1.15)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw()?;
        for ((name, points), colour) in lines.iter().zip(COLOURS.iter().cycle()) {
            chart
                .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))?;
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
        root.present()?;
    }
    Ok(svg)
}
