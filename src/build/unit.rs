//! The transient unit of a build: `gear-build-<tag>.service`, running `gear-builder`.
//! Its properties are declared here, in one place, each with why (a pure function).

use super::record::{BuildRecord, log_file};
use crate::container::spec::SliceName;
use crate::paths::Paths;
use crate::systemd::Property;

/// Where `make install` puts the builder.
pub const BUILDER: &str = "/usr/libexec/gear/gear-builder";

/// The properties of the unit that runs build `rec`, with the builder at `builder`.
pub fn properties(rec: &BuildRecord, paths: &Paths, builder: &str) -> Vec<Property> {
    let log = log_file(paths, &rec.id).display().to_string();
    let root = paths.root().display().to_string();
    let argv = |verb: &str| -> Vec<String> {
        [builder, verb, "--root", &root, rec.id.as_str()]
            .into_iter()
            .map(String::from)
            .collect()
    };
    vec![
        Property::Str(
            "Description",
            format!("gear build of {} (build {})", rec.request.tag, rec.id),
        ),
        // The start job ends once the builder runs, so a second start of the same name
        // (another build of the tag) fails at once while this one runs: the name is the
        // lock, and the agent answers 409.
        Property::Str("Type", "exec".into()),
        // Unloaded once it ended, failed or not: the name is free for the next build and
        // nothing is left in systemd; the record keeps the result.
        Property::Str("CollectMode", "inactive-or-failed".into()),
        // The working directory (source, scripts, artifacts) lives in a /tmp of the
        // unit's own, which systemd removes when the unit stops, whatever killed it.
        Property::Bool("PrivateTmp", true),
        // Builds take CPU and memory like containers do, and are accounted with them.
        Property::Str("Slice", SliceName::default().to_string()),
        // The log the agent streams to the client and `gear build-logs` reads.
        Property::Str("StandardOutputFileToAppend", log.clone()),
        Property::Str("StandardErrorFileToAppend", log),
        Property::Exec("ExecStart", argv("run"), false),
        // After the builder, however it ended (a stop kills its docker clients, not the
        // containers they drive): removes the build's containers and, if the builder
        // could not, records the failure. A failure here must not hide the build's own.
        Property::Exec("ExecStopPost", argv("finish"), true),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::BuildRequest;

    #[test]
    fn the_unit_runs_the_builder_on_the_record_with_its_log() {
        let req = BuildRequest::new(
            "/srv/site".parse().unwrap(),
            "gear-test/s2i-web".parse().unwrap(),
            "gear-test/site".parse().unwrap(),
        );
        let rec = BuildRecord::start(req);
        let props = properties(&rec, &Paths::new("/"), BUILDER);
        let exec = props
            .iter()
            .find_map(|p| match p {
                Property::Exec("ExecStart", argv, false) => Some(argv.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(exec, [BUILDER, "run", "--root", "/", rec.id.as_str()]);
        assert!(props.contains(&Property::Bool("PrivateTmp", true)));
        assert!(props.contains(&Property::Str("Type", "exec".into())));
        let log = format!("/var/lib/containers/builds/{}.log", rec.id);
        assert!(props.contains(&Property::Str("StandardErrorFileToAppend", log)));
        assert_eq!(rec.unit, "gear-build-gear\\x2dtest-site:latest.service");
    }
}
