//! `chunkyard bench --plot`: resident memory over time of every run, drawn
//! into one SVG chart.

use std::path::Path;

use chunkyard::{Error, Result};

use super::build::{BuildReport, GeneratorReport};
use super::reads::ReadReport;
use crate::procmem::MemoryTrace;

/// Resident memory over time, one colour per run (like `mprof plot`): the
/// total resident set as a thick line and its file-backed part as a thin
/// one, in MiB against seconds since each run started.
pub(crate) fn plot_memory(
    svg: &Path,
    reports: &[(BuildReport, Option<ReadReport>)],
    g: &GeneratorReport,
) -> Result<()> {
    use plotters::prelude::*;
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let mut runs: Vec<(String, &MemoryTrace)> = vec![("generator alone".to_string(), &g.memory)];
    for (r, w) in reports {
        runs.push((format!("{} build", r.format), &r.memory));
        if let Some(w) = w {
            runs.push((format!("{} reads", r.format), &w.memory));
        }
    }
    let t_max = runs
        .iter()
        .filter_map(|(_, m)| m.samples.last().map(|s| s.0))
        .fold(1e-3, f64::max);
    let y_max = runs
        .iter()
        .map(|(_, m)| mib(m.peak_total))
        .fold(1.0, f64::max)
        * 1.1;
    let err = |e: &dyn std::fmt::Display| Error::io(svg, std::io::Error::other(e.to_string()));
    let root = SVGBackend::new(svg, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("chunkyard bench: resident memory", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..t_max, 0f64..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("time since the run started (s)")
        .y_desc("resident memory (MiB)")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, m)) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                m.samples.iter().map(|(t, r)| (*t, mib(r.total()))),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(format!("{name}: total (peak {:.0} MiB)", mib(m.peak_total)))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(LineSeries::new(
                m.samples.iter().map(|(t, r)| (*t, mib(r.file))),
                color.stroke_width(1),
            ))
            .map_err(|e| err(&e))?
            .label(format!(
                "{name}: file-backed (peak {:.0} MiB)",
                mib(m.peak_file)
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
