//! The container image: a Dockerfile that builds the `knactor` binary from the workspace and
//! holds the app at `/app`, with each file the app names outside its directory where the same
//! relative path from `/app` leads (`../../dxg-specs/retail/x.yaml` → `/dxg-specs/retail/x.yaml`).

use std::path::{Component, Path, PathBuf};

use integrators::source::{Diagnostic, SpecFile};
use knactor::AppConfig;
use knactor::app::APP_FILE;
use knactor::manifest;

use super::DeployError;

/// Where the app directory is in the image.
pub(super) const APP_DIR: &str = "/app";

/// The user the container runs as: not root.
const USER: &str = "65532:65532";

/// The path in the image of `path`, a file the app in `app_dir` names.
pub(super) fn path_in_image(app_dir: &Path, path: &Path) -> PathBuf {
    let relative = path.strip_prefix(app_dir).unwrap_or(path);
    normalize(&Path::new(APP_DIR).join(relative))
}

/// Every file the app reads that is not under its directory: knactor manifests, their seeds,
/// integrator specs and policies.
pub(super) fn files_outside(config: &AppConfig) -> Result<Vec<PathBuf>, Diagnostic> {
    let app_file = SpecFile::read(&config.dir.join(APP_FILE))?;
    let spec = &config.manifest.spec;
    let knactors = manifest::expand_globs(&app_file, &config.dir, &spec.knactors, "knactors")?;
    let policies = manifest::expand_globs(&app_file, &config.dir, &spec.policies, "policies")?;
    // `AppConfig::load` keeps the knactors in the order of their files.
    let seeds = knactors.iter().zip(&config.knactors).flat_map(|(path, knactor)| {
        let dir = path.parent().unwrap_or(Path::new("."));
        knactor.spec.stores.iter().filter_map(move |s| s.seed.as_ref().map(|seed| dir.join(seed)))
    });
    let seeds: Vec<PathBuf> = seeds.collect();
    let mut files: Vec<PathBuf> = knactors
        .into_iter()
        .chain(seeds)
        .chain(config.integrators.clone())
        .chain(policies)
        .collect();
    files.retain(|f| !path_in_image(&config.dir, f).starts_with(APP_DIR));
    files.sort();
    files.dedup();
    Ok(files)
}

/// What the Dockerfile is built from and for.
#[derive(Debug)]
pub(super) struct Build<'a> {
    /// The build context, absolute: the workspace root, holding the app.
    pub(super) context: &'a Path,
    /// The app directory.
    pub(super) app_dir: &'a Path,
    /// The files the app reads outside its directory.
    pub(super) outside: &'a [PathBuf],
    /// Where the Dockerfile is written.
    pub(super) out_dir: &'a Path,
    /// The image's tag.
    pub(super) image: &'a str,
}

impl Build<'_> {
    /// The Dockerfile: a Rust stage that builds `knactor`, then a slim Debian one holding the
    /// binary and the app, running as a user that is not root.
    pub(super) fn dockerfile(&self) -> Result<String, DeployError> {
        let dockerfile = self.out_dir.join("Dockerfile");
        let dockerfile = self.in_context(&dockerfile).unwrap_or(dockerfile);
        let mut text = format!(
            "# The image the app's Deployments run. Build it from the workspace root:\n\
             #   docker build -f {dockerfile} -t {image} .\n\
             # (BuildKit reads Dockerfile.dockerignore beside it: target/ and .git/ stay out).\n\
             \n\
             FROM rust:1-bookworm AS build\n\
             WORKDIR /src\n\
             COPY . .\n\
             RUN cargo build --release --locked -p knactor-cli --bin knactor\n\
             \n\
             FROM debian:bookworm-slim\n\
             RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \\\n    \
             && rm -rf /var/lib/apt/lists/*\n\
             COPY --from=build /src/target/release/knactor /usr/local/bin/knactor\n",
            dockerfile = dockerfile.display(),
            image = self.image,
        );
        text.push_str(&self.copy(self.app_dir, Path::new(APP_DIR))?);
        for file in self.outside {
            text.push_str(&self.copy(file, &path_in_image(self.app_dir, file))?);
        }
        text.push_str(&format!("USER {USER}\nENTRYPOINT [\"knactor\"]\n"));
        Ok(text)
    }

    /// What BuildKit leaves out of the context for this Dockerfile.
    pub(super) fn dockerignore(&self) -> String {
        "target/\n.git/\n**/.knactor/\n".into()
    }

    /// A COPY of `host` (a path as the app names it) to `image`, owned by the container's user.
    fn copy(&self, host: &Path, image: &Path) -> Result<String, DeployError> {
        let source = self.in_context(host).ok_or_else(|| DeployError::OutsideContext {
            path: host.to_owned(),
            context: self.context.to_owned(),
        })?;
        let source = match source.as_os_str().is_empty() {
            true => ".".to_owned(),
            false => source.display().to_string(),
        };
        let paths = serde_json::to_string(&[source, image.display().to_string()])
            .expect("strings serialize");
        Ok(format!("COPY --chown={USER} {paths}\n"))
    }

    /// `path` relative to the build context, when it is inside.
    fn in_context(&self, path: &Path) -> Option<PathBuf> {
        let path = normalize(&self.context.join(path));
        path.strip_prefix(self.context).ok().map(Path::to_owned)
    }
}

/// `path` without `.` and with each `..` taking away the component before it, as the kernel
/// resolves it when no component is a symbolic link (`/..` is `/`).
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_keep_their_path_from_the_app() {
        let app = Path::new("apps/retail");
        let spec = app.join("../../dxg-specs/retail/checkout.yaml");
        assert_eq!(path_in_image(app, &spec), Path::new("/dxg-specs/retail/checkout.yaml"));
        let knactor = app.join("knactors/./checkout.yaml");
        assert_eq!(path_in_image(app, &knactor), Path::new("/app/knactors/checkout.yaml"));
        let far = app.join("../../../../../x.yaml");
        assert_eq!(path_in_image(app, &far), Path::new("/x.yaml"));
        assert_eq!(path_in_image(app, Path::new("/abs/y.yaml")), Path::new("/abs/y.yaml"));
    }

    #[test]
    fn the_dockerfile_copies_the_app_and_what_it_names() {
        let outside = [PathBuf::from("apps/retail/../../dxg-specs/retail/checkout.yaml")];
        let build = Build {
            context: Path::new("/work"),
            app_dir: Path::new("apps/retail"),
            outside: &outside,
            out_dir: Path::new("deploy/retail"),
            image: "knactor:1",
        };
        let text = build.dockerfile().unwrap();
        assert!(text.contains("docker build -f deploy/retail/Dockerfile -t knactor:1 ."), "{text}");
        assert!(text.contains("COPY --chown=65532:65532 [\"apps/retail\",\"/app\"]\n"), "{text}");
        let spec = "[\"dxg-specs/retail/checkout.yaml\",\"/dxg-specs/retail/checkout.yaml\"]";
        assert!(text.contains(spec), "{text}");
        assert!(text.ends_with("USER 65532:65532\nENTRYPOINT [\"knactor\"]\n"), "{text}");

        let elsewhere = Build { app_dir: Path::new("/elsewhere/app"), ..build };
        let err = elsewhere.dockerfile().unwrap_err().to_string();
        assert!(err.contains("/elsewhere/app is outside the Docker build context /work"), "{err}");
    }
}
