//! Progress bars on stderr for the long-running commands, and the block
//! copy they all share.

use std::io::IsTerminal;
use std::time::Duration;

use chunkyard::ArrayHandle;
use chunkyard::ResolvedSelection;
use chunkyard::Result;
use chunkyard::copy_selection;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar on stderr when both stdout and stderr are terminals;
/// hidden otherwise.
pub(crate) fn progress_bar(len: u64, what: &str) -> ProgressBar {
    if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Copies a selection into another (same shape) block by block, with a
/// progress bar named `what`.
pub(crate) fn copy_blocks(
    src: &ArrayHandle,
    src_sel: &ResolvedSelection,
    dst: &ArrayHandle,
    dst_sel: &ResolvedSelection,
    what: &str,
) -> Result<()> {
    let blocks = chunkyard::copy_selection_steps(dst_sel, dst);
    let bar = progress_bar(blocks, what);
    let r = copy_selection(src, src_sel, dst, dst_sel, &|n| bar.inc(n));
    bar.finish_and_clear();
    r
}
