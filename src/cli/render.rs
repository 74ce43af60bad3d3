//! Rendering engine events on stderr (STYLE habit 8: the engine emits [`Event`]s, the CLI draws
//! them). stdout is never written here: it carries only the report, so `--format json | jq` works
//! with bars on the terminal.
//!
//! One of three ways is chosen per run ([`Renderer::new`]):
//! - **bars**, when stderr is a terminal (`--progress auto`) or asked for (`--progress always`):
//!   indicatif bars, one per active blob (digest, bytes, rate, who uses it) polled from the
//!   counter the engine hands out with [`Event::BlobStarted`], an overall bar whose total comes
//!   from [`Event::PlanReady`], and each finished item printed above the bars;
//! - **lines**, when stderr is a file, a pipe or a CI log (`--progress never`): one plain line per
//!   finished blob or manifest, no escape codes, so logs stay greppable;
//! - **quiet** (`-q`): nothing; errors are still printed, by the caller.
//!
//! The same text is used for a finished item in both of the first two ways ([`finished_line`]).
//! `-v` also turns on `tracing` output ([`init_logging`]), which goes through the bars (printed
//! above them) instead of tearing them.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use crate::copy::{BlobHow, Event, Events};
use crate::inspect::media_type_name;
use crate::plan::PlannedBlob;
use crate::report::human_bytes;

/// `--progress`: when to draw bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// When stderr is a terminal that can move its cursor.
    #[default]
    Auto,
    /// Even when stderr is not a terminal (a log viewer that understands ANSI escapes).
    Always,
    /// Plain lines only.
    Never,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct OutputOptions {
    pub quiet: bool,
    pub verbose: bool,
    pub progress: Progress,
}

/// The event sink of one run. Call [`Renderer::finish`] before printing the report or an error.
pub struct Renderer {
    mode: Mode,
    verbose: bool,
}

enum Mode {
    Quiet,
    Lines,
    Bars(Bars),
}

impl Renderer {
    pub fn new(opts: OutputOptions) -> Arc<Renderer> {
        let mode = if opts.quiet {
            Mode::Quiet
        } else {
            match opts.progress {
                Progress::Never => Mode::Lines,
                Progress::Always if stderr_is_terminal() => {
                    Mode::Bars(Bars::new(ProgressDrawTarget::stderr_with_hz(BARS_HZ)))
                }
                Progress::Always => Mode::Bars(Bars::new(ProgressDrawTarget::term_like_with_hz(
                    Box::new(AnsiStderr::new()),
                    BARS_HZ,
                ))),
                Progress::Auto if stderr_is_terminal() => {
                    Mode::Bars(Bars::new(ProgressDrawTarget::stderr_with_hz(BARS_HZ)))
                }
                Progress::Auto => Mode::Lines,
            }
        };
        Arc::new(Renderer {
            mode,
            verbose: opts.verbose,
        })
    }

    /// Say what is happening before the first event (planning reads the source and HEADs the
    /// destination, which can take a while on a slow registry). Only shown with bars.
    pub fn status(&self, message: impl Into<String>) {
        if let Mode::Bars(b) = &self.mode {
            let message: String = message.into();
            b.state()
                .overall
                .set_message(crate::oci::escape_controls_in_text(&message).into_owned());
        }
    }

    /// Remove the bars (what was printed above them stays). Idempotent.
    pub fn finish(&self) {
        if let Mode::Bars(b) = &self.mode {
            b.finish();
        }
    }

    /// Where log lines go so that they do not tear the bars.
    pub fn multi(&self) -> Option<MultiProgress> {
        match &self.mode {
            Mode::Bars(b) => Some(b.multi.clone()),
            _ => None,
        }
    }

    fn line(&self, line: &str) {
        let line = &*crate::oci::escape_controls_in_text(line);
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            Mode::Bars(b) => {
                let _ = b.multi.println(line);
            }
        }
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Events for Renderer {
    fn event(&self, event: Event<'_>) {
        if let Mode::Quiet = self.mode {
            return;
        }
        if let Mode::Bars(b) = &self.mode {
            b.event(&event);
        }
        let verbose_line = match &event {
            Event::PlanReady {
                total_blobs,
                total_bytes,
            } => Some(format!(
                "to copy: {total_blobs} blobs ({})",
                human_bytes(*total_bytes)
            )),
            Event::BlobStarted { blob, .. } => Some(format!(
                "start   {}  {:>10}  {}",
                blob.digest.short(),
                human_bytes(blob.size),
                blob.used_by.join(", ")
            )),
            _ => None,
        };
        if let Some(l) = verbose_line {
            // With bars these are what the bars show; as lines, only `-v` wants them.
            if self.verbose && matches!(self.mode, Mode::Lines) {
                self.line(&l);
            }
        }
        if let Some(l) = finished_line(&event) {
            self.line(&l);
        }
    }
}

/// The line for a finished item (or a retry), the same above the bars and in a log.
pub fn finished_line(event: &Event<'_>) -> Option<String> {
    Some(match event {
        Event::BlobDone { blob, how } => format!(
            "{}  {}  {:>10}  {}",
            match how {
                BlobHow::Transferred => "copied ",
                BlobHow::Mounted => "mounted",
            },
            blob.digest.short(),
            human_bytes(blob.size),
            blob.used_by.join(", ")
        ),
        Event::ManifestPushed {
            digest,
            media_type,
            tag,
        } => match tag {
            Some(t) => format!(
                "tagged   {}  {}, as {t}",
                digest.short(),
                media_type_name(media_type)
            ),
            None => format!(
                "pushed   {}  {}",
                digest.short(),
                media_type_name(media_type)
            ),
        },
        Event::Retrying {
            what,
            attempt,
            error,
        } => format!("retry    {what} (attempt {attempt}): {error}"),
        Event::PlanReady { .. } | Event::BlobStarted { .. } => return None,
    })
}

const BARS_HZ: u8 = 10;
const TICK: Duration = Duration::from_millis(100);

fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

struct Bars {
    multi: MultiProgress,
    state: Arc<Mutex<BarState>>,
    stop: Arc<AtomicBool>,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

struct BarState {
    overall: ProgressBar,
    /// Active blob bars, by digest, with the byte counter the engine updates.
    active: HashMap<String, (ProgressBar, Arc<AtomicU64>)>,
    /// Bytes and blobs finished (copied or mounted) so far, over every plan of the run.
    done_bytes: u64,
    done_blobs: u64,
    total_blobs: u64,
    planned: bool,
    finished: bool,
}

impl BarState {
    fn overall_message(&self) -> String {
        format!("{}/{} blobs", self.done_blobs, self.total_blobs)
    }

    /// Move every bar to what its counter says.
    fn poll(&self) {
        let mut moving = 0;
        for (bar, counter) in self.active.values() {
            let seen = counter.load(Ordering::Relaxed);
            bar.set_position(seen);
            moving += seen;
        }
        if self.planned {
            self.overall.set_position(self.done_bytes + moving);
        }
    }
}

// Column layout, the same for every bar so they line up: a 32-character label, the bar (as wide
// as the terminal allows: `wide_bar`, which also follows a resize), then 35 characters of bytes and
// rate. At 80 columns the bar gets 11 characters; nothing wraps.
const USED_BY: usize = 16;

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.green} {wide_msg}")
        .expect("a valid template")
        .tick_chars(SPINNER)
}

fn overall_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner:.green} {msg:<14.bold} eta {eta:<10} [{wide_bar:.green/white}] {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12}",
    )
    .expect("a valid template")
    .progress_chars("=> ")
    .tick_chars(SPINNER)
}

fn blob_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "  {prefix:<12.dim} {msg:<16} [{wide_bar:.cyan/white}] {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12}",
    )
    .expect("a valid template")
    .progress_chars("=> ")
}

const SPINNER: &str = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ";

impl Bars {
    fn new(target: ProgressDrawTarget) -> Bars {
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(
            ProgressBar::new_spinner()
                .with_style(spinner_style())
                .with_message("planning"),
        );
        let state = Arc::new(Mutex::new(BarState {
            overall,
            active: HashMap::new(),
            done_bytes: 0,
            done_blobs: 0,
            total_blobs: 0,
            planned: false,
            finished: false,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = ticker(&stop, state.clone(), |s: &BarState| {
            s.poll();
            s.overall.tick();
        });
        Bars {
            multi,
            state,
            stop,
            ticker: Mutex::new(ticker),
        }
    }

    fn state(&self) -> MutexGuard<'_, BarState> {
        lock(&self.state)
    }

    fn event(&self, event: &Event<'_>) {
        let mut s = self.state();
        if s.finished {
            return;
        }
        match event {
            Event::PlanReady {
                total_blobs,
                total_bytes,
            } => {
                // A second plan (`--on-sparse-reject complete`) adds to what is done already.
                s.total_blobs = s.done_blobs + total_blobs;
                s.planned = true;
                // Message and numbers first: each call may draw, and the bar style must not be
                // drawn with the planning message.
                let msg = s.overall_message();
                s.overall.set_message(msg);
                s.overall.set_length(s.done_bytes + total_bytes);
                s.overall.set_position(s.done_bytes);
                s.overall.reset_eta();
                s.overall.set_style(overall_style());
            }
            Event::BlobStarted { blob, progress } => {
                let bar = self.multi.insert_before(
                    &s.overall,
                    ProgressBar::new(blob.size)
                        .with_style(blob_style())
                        .with_prefix(blob.digest.hex()[..12].to_string())
                        .with_message(used_by(blob)),
                );
                s.active
                    .insert(blob.digest.to_string(), (bar, progress.clone()));
            }
            Event::BlobDone { blob, .. } => {
                if let Some((bar, _)) = s.active.remove(blob.digest.as_str()) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                s.done_bytes += blob.size;
                s.done_blobs += 1;
                if s.planned {
                    s.total_blobs = s.total_blobs.max(s.done_blobs);
                    let msg = s.overall_message();
                    s.overall.set_message(msg);
                }
                s.poll();
            }
            Event::ManifestPushed { .. } | Event::Retrying { .. } => {}
        }
    }

    fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = lock(&self.ticker).take() {
            let _ = t.join();
        }
        let mut s = self.state();
        if s.finished {
            return;
        }
        s.finished = true;
        for (_, (bar, _)) in s.active.drain() {
            bar.finish_and_clear();
        }
        s.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// Who uses a blob, for its bar: the platforms (or attestations) whose manifests list it, cut to
/// the label column (a base layer shared by every platform would not fit).
fn used_by(blob: &PlannedBlob) -> String {
    let full = match blob.used_by.len() {
        0..=1 => blob.used_by.join(", "),
        n => format!("{} +{}", blob.used_by[0], n - 1),
    };
    fit(&full, USED_BY)
}

/// `s` in at most `width` characters, `…` marking a cut.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// A thread that redraws `state` every [`TICK`] until `stop` is set.
fn ticker<S: Send + 'static>(
    stop: &Arc<AtomicBool>,
    state: Arc<Mutex<S>>,
    draw: impl Fn(&S) + Send + 'static,
) -> Option<JoinHandle<()>> {
    let stop = stop.clone();
    std::thread::Builder::new()
        .name("progress".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                draw(&lock(&state));
                std::thread::sleep(TICK);
            }
        })
        .ok()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// stderr as a terminal, for `--progress always` when it is not one (indicatif would hide the
/// bars): plain ANSI cursor movements, `$COLUMNS` wide (80 when unset).
#[derive(Debug)]
struct AnsiStderr {
    width: u16,
}

impl AnsiStderr {
    fn new() -> AnsiStderr {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .filter(|w| *w >= 20)
            .unwrap_or(80);
        AnsiStderr { width }
    }

    fn write(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }
}

impl TermLike for AnsiStderr {
    fn width(&self) -> u16 {
        self.width
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}A"))
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}B"))
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}C"))
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}D"))
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.write(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.write("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().lock().flush()
    }
}

/// `-v`: `tracing` events on stderr, `MIRROR_LOG` (an `EnvFilter`, e.g. `mirror=trace`) to choose
/// what; without `-v`, `MIRROR_LOG` alone turns logging on. `-q` wins over both. Log lines go
/// through the bars when there are any.
pub fn init_logging(opts: &OutputOptions, multi: Option<MultiProgress>) {
    use tracing_subscriber::EnvFilter;

    if opts.quiet {
        return;
    }
    let from_env = std::env::var("MIRROR_LOG").ok().filter(|v| !v.is_empty());
    let filter = match (&from_env, opts.verbose) {
        (Some(f), _) => EnvFilter::try_new(f).unwrap_or_else(|e| {
            let _ = writeln!(
                std::io::stderr(),
                "warning: MIRROR_LOG={f:?} is not a valid filter ({e}); using mirror=debug"
            );
            EnvFilter::new("mirror=debug")
        }),
        (None, true) => EnvFilter::new("mirror=debug"),
        (None, false) => return,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogSink { multi })
        .with_ansi(stderr_is_terminal())
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_target(false)
        .try_init();
}

/// Makes one [`LogLine`] per event.
struct LogSink {
    multi: Option<MultiProgress>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine {
            buf: Vec::new(),
            multi: self.multi.clone(),
        }
    }
}

/// One formatted event, written to stderr whole when dropped (above the bars if any).
struct LogLine {
    buf: Vec<u8>,
    multi: Option<MultiProgress>,
}

impl Write for LogLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let put = || {
            let _ = std::io::stderr().lock().write_all(&buf);
        };
        match &self.multi {
            Some(m) if !m.is_hidden() => m.suspend(put),
            _ => put(),
        }
    }
}

/// The progress of a `sync`: what [`crate::sync::SyncProgress`] reports, drawn one of two ways.
/// - **bars** (a terminal, or `--progress always`): one overall bar, tags done of the total with
///   the bytes moved and their rate, and a line per image in flight (its source and what it has
///   moved), cleared when it ends; each finished tag is printed above the bars;
/// - **lines** (not a terminal, `--progress never`, or `-q`): one line per finished tag, so a log
///   of a sync with images in flight stays readable (`-v` adds the engine's per-item lines).
pub struct SyncRenderer {
    bars: Option<SyncBars>,
    verbose: bool,
}

struct SyncBars {
    multi: MultiProgress,
    state: Arc<Mutex<SyncState>>,
    stop: Arc<AtomicBool>,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

struct SyncState {
    overall: ProgressBar,
    /// Images in flight: their line and the bytes they have moved.
    images: HashMap<usize, (ProgressBar, String, u64)>,
    bytes: u64,
    started: std::time::Instant,
    finished: bool,
}

impl SyncState {
    fn overall_message(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        format!(
            "{} at {}/s",
            human_bytes(self.bytes),
            human_bytes((self.bytes as f64 / secs) as u64)
        )
    }
}

fn sync_overall_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner:.green} {pos:>4}/{len:<4} tags [{wide_bar:.green/white}] {msg:>24} eta {eta}",
    )
    .expect("a valid template")
    .progress_chars("=> ")
    .tick_chars(SPINNER)
}

fn sync_image_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner:.cyan} {wide_msg}")
        .expect("a valid template")
        .tick_chars(SPINNER)
}

impl SyncRenderer {
    pub fn new(opts: OutputOptions) -> Arc<SyncRenderer> {
        let target = match (opts.quiet, opts.progress) {
            (true, _) | (false, Progress::Never) => None,
            (false, Progress::Always) if !stderr_is_terminal() => Some(
                ProgressDrawTarget::term_like_with_hz(Box::new(AnsiStderr::new()), BARS_HZ),
            ),
            (false, Progress::Auto) if !stderr_is_terminal() => None,
            (false, _) => Some(ProgressDrawTarget::stderr_with_hz(BARS_HZ)),
        };
        Arc::new(SyncRenderer {
            bars: target.map(SyncBars::new),
            verbose: opts.verbose,
        })
    }

    /// Where log lines go so that they do not tear the bars.
    pub fn multi(&self) -> Option<MultiProgress> {
        self.bars.as_ref().map(|b| b.multi.clone())
    }

    /// Remove the bars (what was printed above them stays). Idempotent.
    pub fn finish(&self) {
        if let Some(b) = &self.bars {
            b.finish();
        }
    }

    fn line(&self, line: &str) {
        match &self.bars {
            Some(b) => {
                let _ = b.multi.println(line);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        }
    }
}

impl Drop for SyncRenderer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The run's event sink: per-image events arrive through [`crate::sync::SyncProgress::event`].
impl Events for SyncRenderer {
    fn event(&self, _event: Event<'_>) {}
}

impl crate::sync::SyncProgress for SyncRenderer {
    fn total(&self, pairs: usize) {
        if let Some(b) = &self.bars {
            let s = b.state();
            s.overall.set_length(pairs as u64);
            s.overall.set_position(0);
            s.overall.set_message(s.overall_message());
            s.overall.set_style(sync_overall_style());
        }
    }

    fn started(&self, id: usize, source: &str) {
        if let Some(b) = &self.bars {
            let mut s = b.state();
            if s.finished {
                return;
            }
            let line = b.multi.insert_before(
                &s.overall,
                ProgressBar::new_spinner()
                    .with_style(sync_image_style())
                    .with_message(source.to_string()),
            );
            s.images.insert(id, (line, source.to_string(), 0));
        }
    }

    fn event(&self, id: usize, event: &Event<'_>) {
        if let Some(b) = &self.bars {
            let mut s = b.state();
            if let Event::BlobDone { blob, .. } = event {
                s.bytes += blob.size;
                if let Some((line, source, bytes)) = s.images.get_mut(&id) {
                    *bytes += blob.size;
                    line.set_message(format!("{source}  {}", human_bytes(*bytes)));
                }
            }
        }
        if self.verbose
            && self.bars.is_none()
            && let Some(l) = finished_line(event)
        {
            self.line(&l);
        }
    }

    fn finished(&self, id: usize, source: &str, outcome: &str) {
        if let Some(b) = &self.bars {
            let mut s = b.state();
            if let Some((line, _, _)) = s.images.remove(&id) {
                line.finish_and_clear();
                b.multi.remove(&line);
            }
            s.overall.inc(1);
        }
        self.line(&format!("{outcome:<9}  {source}"));
    }
}

impl SyncBars {
    fn new(target: ProgressDrawTarget) -> SyncBars {
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(
            ProgressBar::new_spinner()
                .with_style(spinner_style())
                .with_message("resolving tags"),
        );
        let state = Arc::new(Mutex::new(SyncState {
            overall,
            images: HashMap::new(),
            bytes: 0,
            started: std::time::Instant::now(),
            finished: false,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = ticker(&stop, state.clone(), |s: &SyncState| {
            if s.overall.length().is_some() {
                s.overall.set_message(s.overall_message());
            }
            s.overall.tick();
            for (line, _, _) in s.images.values() {
                line.tick();
            }
        });
        SyncBars {
            multi,
            state,
            stop,
            ticker: Mutex::new(ticker),
        }
    }

    fn state(&self) -> MutexGuard<'_, SyncState> {
        lock(&self.state)
    }

    fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = lock(&self.ticker).take() {
            let _ = t.join();
        }
        let mut s = self.state();
        if s.finished {
            return;
        }
        s.finished = true;
        for (_, (line, _, _)) in s.images.drain() {
            line.finish_and_clear();
        }
        s.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// Run `write` into a buffer and put the text on `out` with control characters from names in it
/// escaped ([`crate::oci::escape_controls_in_text`]): a tag or ref name read from a file cannot
/// move the cursor, retitle the terminal or hide what follows.
pub fn write_terminal_text(
    out: &mut dyn Write,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    write(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    out.write_all(crate::oci::escape_controls_in_text(&text).as_bytes())
}
