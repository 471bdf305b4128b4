//! Writes gear's manual pages and shell completions into DIR, generated from the clap
//! definitions of the programs themselves, so `--help`, the man pages and the completions
//! never disagree. `make install` runs it: `cargo run --release -p gear-manuals -- DIR`.
//!
//! DIR/man1/gear.1 and DIR/man1/gear-SUBCOMMAND.1 (one per subcommand), DIR/man8/PROGRAM.8
//! for every helper in /usr/libexec/gear, and DIR/completions/{gear.bash,_gear,gear.fish}.
//!
//! Why a workspace member and not a hidden subcommand: clap_mangen and clap_complete are
//! linked into no installed program, and building this reuses the release build of the gear
//! library. The helpers' `Cli` structs live in their `src/bin/*.rs`, included below as
//! modules; a new program needs one `program!` line (tests/manuals.rs fails until it has one),
//! and any crate it uses directly must be a dependency here too.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Command, CommandFactory as _};
use clap_complete::Shell;

/// Includes a helper's source as a module so its `Cli` can be rendered; its `main` and the
/// rest are unused here.
macro_rules! program {
    ($module:ident, $path:literal) => {
        #[allow(dead_code, unused_imports)]
        #[path = $path]
        mod $module;
    };
}

program!(gear_api, "../../../src/bin/gear-api.rs");
program!(gear_builder, "../../../src/bin/gear-builder.rs");
program!(gear_enter, "../../../src/bin/gear-enter.rs");
program!(gear_enterd, "../../../src/bin/gear-enterd.rs");
program!(gear_git_shell, "../../../src/bin/gear-git-shell.rs");
program!(gear_idler, "../../../src/bin/gear-idler.rs");
program!(gear_keys, "../../../src/bin/gear-keys.rs");
program!(gear_step, "../../../src/bin/gear-step.rs");

/// The helpers in /usr/libexec/gear: section 8, system administration and daemons.
fn helpers() -> Vec<Command> {
    vec![
        gear_api::Cli::command().name("gear-api"),
        gear_builder::Cli::command().name("gear-builder"),
        gear_enter::Cli::command().name("gear-enter"),
        gear_enterd::Cli::command().name("gear-enterd"),
        gear_git_shell::Cli::command().name("gear-git-shell"),
        gear_idler::Cli::command().name("gear-idler"),
        gear_keys::Cli::command().name("gear-keys"),
        gear_step::Cli::command().name("gear-step"),
    ]
}

/// What every page says in its title line; no date, so a rebuild gives the same files.
fn page(cmd: Command, section: &str) -> clap_mangen::Man {
    let source = format!("gear {}", env!("CARGO_PKG_VERSION"));
    clap_mangen::Man::new(cmd)
        .section(section)
        .source(source)
        .manual("gear Manual")
}

fn write_page(man: &clap_mangen::Man, dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(man.get_filename());
    let mut text = Vec::new();
    man.render(&mut text)
        .with_context(|| format!("rendering {}", path.display()))?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// A page for CMD and, recursively, for each visible subcommand (`gear-install.1`,
/// `gear-step-prepare.8`), as `clap_mangen::generate_to` does, but with our title line.
/// `help` is clap's, not ours: no page. build() gives every subcommand its display name
/// (gear-install), which names its page.
fn write_tree(cmd: Command, section: &str, dir: &Path) -> anyhow::Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    write_subtree(&cmd, section, dir)
}

fn write_subtree(cmd: &Command, section: &str, dir: &Path) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_subtree(sub, section, dir)?;
    }
    write_page(&page(cmd.clone(), section), dir)
}

fn generate(out: &Path) -> anyhow::Result<()> {
    let (man1, man8, completions) = (out.join("man1"), out.join("man8"), out.join("completions"));
    for dir in [&man1, &man8, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_tree(gear::cli::command::Cli::command(), "1", &man1)?;
    for helper in helpers() {
        write_tree(helper, "8", &man8)?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut gear = gear::cli::command::Cli::command();
        clap_complete::generate_to(shell, &mut gear, "gear", &completions)
            .with_context(|| format!("writing the {shell} completion"))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: manuals DIR");
        return ExitCode::from(2);
    };
    match generate(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
