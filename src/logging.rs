//! Logging for every gear program: the `log` facade to stderr, without timestamps
//! (journald adds its own), louder with each `-v`.

/// Sets up logging; `verbosity` counts `-v` flags (0 = warnings and errors only).
/// `RUST_LOG` still wins when set.
pub fn init(verbosity: u8) {
    let level = match verbosity {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .parse_env("RUST_LOG")
        .format_timestamp(None)
        .format_target(false)
        .init();
}
