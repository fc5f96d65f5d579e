//! Stage 3: typed instructions to a [`BuildGraph`] (BuildKit's `dockerfile2llb`): one
//! function per instruction, stage references resolved on demand (so only what the
//! target needs is lowered, dependencies first, cycles refused), ARG/ENV scoping, base
//! image config and ONBUILD triggers from the resolver.

use crate::dockerignore::Matcher;
use crate::error::{Diagnostic, FrontendError, Span, graph_err, instr_err};
use crate::expand::{Env, Lexer, Vars};
use crate::graph::*;
use crate::instructions::{CmdLine, CopyArgs, Health, Instruction, parse_instruction};
use crate::options::{BaseImageInfo, ImageResolver, LintInputs, LowerOptions, Platform};
use crate::parser::{Ast, Heredoc, Node, parse, parse_heredoc};
use crate::path;
use crate::suggest::suggest;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// A graph plus the warnings found while building it.
#[derive(Debug, Clone, Serialize)]
pub struct Lowered {
    /// The graph.
    pub graph: BuildGraph,
    /// Warnings (lints that need semantics: undefined variables, unused build args...).
    pub warnings: Vec<Diagnostic>,
}

/// Build args that are predefined: usable without `ARG`, never reported unused.
pub const PROXY_ARGS: [&str; 8] =
    ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy"];

const ALL_PROXY: [&str; 2] = ["ALL_PROXY", "all_proxy"];

/// The default PATH of an image without one (BuildKit's `system.DefaultPathEnv`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Typed instructions with their nodes.
pub(crate) type Located<'a> = Vec<(Instruction, &'a Node)>;

pub(crate) struct StageDef<'a> {
    pub node: &'a Node,
    pub base: String,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub body: Located<'a>,
}

/// Split typed instructions into global ARGs and stages.
pub(crate) fn split_stages<'a>(ast: &'a Ast) -> Result<(Located<'a>, Vec<StageDef<'a>>), FrontendError> {
    let file = &ast.file_name;
    let mut globals = Vec::new();
    let mut stages: Vec<StageDef> = Vec::new();
    for node in &ast.nodes {
        let ins = parse_instruction(node, file)?;
        match (ins, stages.last_mut()) {
            (Instruction::From { base, name, platform, .. }, _) => {
                stages.push(StageDef { node, base, name, platform, body: Vec::new() })
            }
            (i @ Instruction::Arg(_), None) => globals.push((i, node)),
            (_, None) => {
                return Err(instr_err(file, node.span, "no build stage in current context"));
            }
            (i, Some(st)) => st.body.push((i, node)),
        }
    }
    if stages.is_empty() {
        let sp = ast.nodes.first().map(|n| n.span).unwrap_or_default();
        return Err(graph_err(file, sp, "the Dockerfile has no stages to build (no FROM)"));
    }
    Ok((globals, stages))
}

/// Lower a parsed Dockerfile into a build graph.
pub fn lower(ast: &Ast, opts: &LowerOptions, resolver: &dyn ImageResolver) -> Result<Lowered, FrontendError> {
    let mut warnings = Vec::new();
    lower_with(ast, opts, resolver, &LintInputs::default(), false, &mut warnings)
}

/// `all_stages`: lower every stage, needed or not (what `check` does when no target is
/// given, as BuildKit's lint mode). The warnings found before an error are left in
/// `early` (check reports them along with the error).
pub(crate) fn lower_with(
    ast: &Ast,
    opts: &LowerOptions,
    resolver: &dyn ImageResolver,
    inputs: &LintInputs,
    all_stages: bool,
    early: &mut Vec<Diagnostic>,
) -> Result<Lowered, FrontendError> {
    let (globals, defs) = split_stages(ast)?;
    let mut lw = Lowerer {
        file: ast.file_name.clone(),
        opts,
        resolver,
        lx: Lexer::new(ast.escape),
        defs: &defs,
        global_env: platform_args(opts),
        global_declared: BTreeMap::new(),
        done: vec![None; defs.len()],
        carry: vec![None; defs.len()],
        in_progress: vec![false; defs.len()],
        order: Vec::new(),
        used_args: BTreeSet::new(),
        warnings: Vec::new(),
        ignore: inputs.dockerignore,
    };
    lw.default_arg_bases(&globals);
    let r = lw.lower_all(&globals, all_stages);
    match r {
        Ok(target) => {
            let stages = lw.order.iter().filter_map(|&i| lw.done[i].take()).collect();
            let proxy_env = proxy_env(opts);
            Ok(Lowered { graph: BuildGraph { target, stages, proxy_env }, warnings: lw.warnings })
        }
        Err(e) => {
            early.append(&mut lw.warnings);
            Err(e)
        }
    }
}

fn proxy_env(opts: &LowerOptions) -> BTreeMap<String, String> {
    let mut proxy_env = BTreeMap::new();
    for k in PROXY_ARGS.iter().chain(ALL_PROXY.iter()) {
        if let Some(v) = opts.build_args.get(*k) {
            proxy_env.insert(k.to_string(), v.clone());
        }
    }
    proxy_env
}

impl<'a> Lowerer<'a> {
    /// Global ARGs, the target and what it needs (or every stage); the target's index.
    fn lower_all(&mut self, globals: &Located, all_stages: bool) -> Result<usize, FrontendError> {
        let (opts, defs) = (self.opts, self.defs);
        for (ins, node) in globals {
            if let Instruction::Arg(args) = ins {
                self.global_arg(args, node)?;
            }
        }
        let target = match &opts.target {
            None => defs.len() - 1,
            Some(t) => {
                let lt = t.to_ascii_lowercase();
                match defs.iter().position(|d| d.name.as_deref() == Some(lt.as_str())) {
                    Some(i) => i,
                    None => {
                        let m = format!("target stage {t:?} could not be found");
                        return Err(graph_err(&self.file, Span::default(), m));
                    }
                }
            }
        };
        self.stage(target, defs[target].node.span)?;
        if all_stages {
            for (i, d) in defs.iter().enumerate() {
                self.stage(i, d.node.span)?;
            }
        }
        let unused: Vec<&str> = opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !is_builtin_arg(k))
            .map(String::as_str)
            .collect();
        if !unused.is_empty() {
            self.warnings.push(Diagnostic::warning(
                "UnusedBuildArg",
                &self.file,
                Span::default(),
                format!("One or more build-args [{}] were not consumed", unused.join(" ")),
            ));
        }
        Ok(target)
    }

    /// InvalidDefaultArgInFrom: with the global ARGs' defaults alone (no build args),
    /// every FROM must still name a valid image (BuildKit's
    /// validateBaseImagesWithDefaultArgs; an expansion error abandons the check).
    fn default_arg_bases(&mut self, globals: &Located) {
        let lx = self.lx;
        let mut env = platform_args(self.opts);
        for (ins, _) in globals {
            let Instruction::Arg(args) = ins else { continue };
            for (k, default) in args {
                let value = match default {
                    Some(d) => match lx.process_word(d, &env) {
                        Ok(e) => Some(e.value),
                        Err(_) => return,
                    },
                    None => env.get(k).cloned(),
                };
                match value {
                    Some(v) => env.insert(k.clone(), v),
                    None => env.remove(k),
                };
            }
        }
        for d in self.defs {
            let Ok(e) = lx.process_word(&d.base, &env) else { return };
            if !crate::reference::valid(&e.value) {
                let m = format!("Default value for ARG {} results in empty or invalid base image name", d.base);
                self.warn("InvalidDefaultArgInFrom", d.node.span, m);
            }
        }
    }
}

fn is_builtin_arg(k: &str) -> bool {
    PROXY_ARGS.contains(&k) || ALL_PROXY.contains(&k) || PLATFORM_ARGS.contains(&k) || k.starts_with("BUILDKIT_")
}

const PLATFORM_ARGS: [&str; 8] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

fn platform_args(o: &LowerOptions) -> Env {
    let t = &o.target_platform.normalized();
    let b = &o.build_platform.normalized();
    let vals = [
        t.to_string(),
        t.os.clone(),
        t.arch.clone(),
        t.variant.clone(),
        b.to_string(),
        b.os.clone(),
        b.arch.clone(),
        b.variant.clone(),
    ];
    PLATFORM_ARGS.iter().map(|s| s.to_string()).zip(vals).collect()
}

struct Lowerer<'a> {
    file: String,
    opts: &'a LowerOptions,
    resolver: &'a dyn ImageResolver,
    lx: Lexer,
    defs: &'a [StageDef<'a>],
    /// Platform ARGs plus global ARGs that have a value: the scope of FROM lines.
    global_env: Env,
    global_declared: BTreeMap<String, Option<String>>,
    done: Vec<Option<Stage>>,
    /// What a `FROM <stage>` inherits beyond the image config.
    carry: Vec<Option<Carry>>,
    in_progress: Vec<bool>,
    order: Vec<usize>,
    used_args: BTreeSet<String>,
    warnings: Vec<Diagnostic>,
    /// The build context's .dockerignore, for CopyIgnoredFile.
    ignore: Option<&'a Matcher>,
}

/// The build-time state a stage based on another stage inherits (BuildKit copies the
/// base's LLB state, so ARG values in its environment carry over too).
#[derive(Clone)]
struct Carry {
    env: Rc<Vec<(String, String)>>,
    args: Vec<(String, Option<String>)>,
    workdir_set: bool,
    unresolved_base: Option<String>,
}

/// The state of one stage while its instructions are dispatched.
struct StageCx {
    index: usize,
    /// The build-time environment (BuildKit's LLB state env): the base image's ENV, then
    /// ENV and ARG writes in order, the later write winning. RUN sees this and
    /// expansions read it. The image config keeps only ENV.
    env: Rc<Vec<(String, String)>>,
    /// ARGs declared in scope (with or without a value).
    args: Vec<(String, Option<String>)>,
    config: ImageConfig,
    cmd_set: bool,
    workdir_set: bool,
    /// The image at the root of this stage's base chain, when the resolver did not know
    /// it: its ENV is unknown, so an unset variable may still be defined there.
    unresolved_base: Option<String>,
    steps: Vec<Step>,
    last: String,
    deps: BTreeSet<usize>,
}

impl StageCx {
    /// Variables for expansion: a snapshot of the build-time environment (shared until
    /// the next write, so taking one per instruction costs nothing).
    fn expand_env(&self) -> Rc<Vec<(String, String)>> {
        Rc::clone(&self.env)
    }

    fn declared(&self, name: &str) -> bool {
        self.args.iter().any(|(k, _)| k == name) || self.env.iter().any(|(k, _)| k == name)
    }

    /// RUN's environment: the build-time environment.
    fn run_env(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// Set a build-time variable (ENV or ARG).
    fn set_state_env(&mut self, k: &str, v: &str) {
        let env = Rc::make_mut(&mut self.env);
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
    }

    /// ENV: both the build-time environment and the image config.
    fn set_env(&mut self, k: &str, v: &str) {
        self.set_state_env(k, v);
        let kv = format!("{k}={v}");
        match self.config.env.iter_mut().find(|e| e.split('=').next() == Some(k)) {
            Some(slot) => *slot = kv,
            None => self.config.env.push(kv),
        }
    }

    fn shell(&self) -> Vec<String> {
        self.config.shell.clone().unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
    }

    /// The working directory as a clean absolute path (what RUN, COPY and mounts use).
    fn workdir(&self) -> String {
        if self.config.working_dir.is_empty() { "/".into() } else { path::clean(&self.config.working_dir) }
    }

    fn push(&mut self, node: &Node, span: Span, trigger: bool, op: Op) {
        let id = step_id(&self.last, &op);
        let description = if trigger { format!("[onbuild] {}", node.original) } else { node.original.clone() };
        self.steps.push(Step { id: id.clone(), parent: self.last.clone(), description, span, op });
        self.last = id;
    }
}

/// RUN's flags, typed but not yet expanded.
struct RunFlags<'i> {
    mounts: &'i [(String, Span)],
    network: Option<&'i str>,
    security: Option<&'i str>,
    devices: &'i [(String, Span)],
}

/// Per-instruction dispatch context: the node, the span to blame, whether it is a trigger.
#[derive(Clone, Copy)]
struct At<'n> {
    node: &'n Node,
    span: Span,
    trigger: bool,
}

impl<'a> Lowerer<'a> {
    fn warn(&mut self, rule: &str, span: Span, msg: String) {
        let d = Diagnostic::warning(rule, &self.file, span, msg);
        self.push_diag(d);
    }

    fn push_diag(&mut self, d: Diagnostic) {
        if !self.warnings.contains(&d) {
            self.warnings.push(d);
        }
    }

    fn global_arg(&mut self, args: &[(String, Option<String>)], node: &Node) -> Result<(), FrontendError> {
        for (k, default) in args {
            let value = match (self.opts.build_args.get(k), default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => {
                    let env = self.global_env.clone();
                    Some(self.expand_with(&env, d, node.span, |_| true, None)?)
                }
                (None, None) => self.global_env.get(k).cloned(),
            };
            if let Some(v) = &value {
                self.global_env.insert(k.clone(), v.clone());
            } else {
                self.global_env.remove(k);
            }
            self.global_declared.insert(k.clone(), value);
        }
        Ok(())
    }

    /// Expand one word; `declared` says whether an unset name is known (no warning).
    fn expand_with(
        &mut self,
        env: &(impl Vars + ?Sized),
        word: &str,
        span: Span,
        declared: impl Fn(&str) -> bool,
        unresolved_base: Option<&str>,
    ) -> Result<String, FrontendError> {
        let ex = self.lx.process_word(word, env).map_err(|e| graph_err(&self.file, span, e))?;
        for name in &ex.unmatched {
            if declared(name) {
                continue;
            }
            if let Some(base) = unresolved_base {
                // The base image may define it: say so rather than call it undefined.
                let m = format!(
                    "Usage of variable '${name}' could not be checked: base image {base:?} was not resolved, its ENV is unknown"
                );
                self.push_diag(Diagnostic::note("UndefinedVar", &self.file, span, m));
                continue;
            }
            let mut m = format!("Usage of undefined variable '${name}'");
            if let Some(s) = suggest(name, env.keys()) {
                m.push_str(&format!(" (did you mean ${s}?)"));
            }
            self.warn("UndefinedVar", span, m);
        }
        Ok(ex.value)
    }

    fn expand(
        &mut self,
        st: &StageCx,
        env: &[(String, String)],
        word: &str,
        span: Span,
    ) -> Result<String, FrontendError> {
        self.expand_with(env, word, span, |n| st.declared(n), st.unresolved_base.as_deref())
    }

    /// Lower stage `i` (once), after the stages it depends on; its final id.
    fn stage(&mut self, i: usize, referenced_at: Span) -> Result<String, FrontendError> {
        if let Some(s) = &self.done[i] {
            return Ok(s.id.clone());
        }
        let defs = self.defs;
        let def = &defs[i];
        if self.in_progress[i] {
            let name = def.name.clone().unwrap_or_else(|| i.to_string());
            return Err(graph_err(&self.file, referenced_at, format!("circular dependency detected on stage: {name}")));
        }
        self.in_progress[i] = true;
        let span = def.node.span;
        let genv = self.global_env.clone();
        let gdecl = self.global_declared.clone();
        // BuildKit: declared global ARGs and the platform ARGs are known in FROM.
        let known: Vec<&str> = gdecl.keys().chain(genv.keys()).map(String::as_str).collect();
        let ex = self.lx.process_word(&def.base, &genv).map_err(|e| graph_err(&self.file, span, e))?;
        self.mark_used(&ex.matched);
        self.undefined_in_from(&ex.unmatched, &known, span);
        let base = ex.value;
        if base.is_empty() {
            return Err(graph_err(&self.file, span, format!("base name ({}) should not be blank", def.base)));
        }
        let platform = match &def.platform {
            None => self.opts.target_platform.normalized().to_string(),
            Some(p) => {
                let ex = self.lx.process_word(p, &genv).map_err(|e| graph_err(&self.file, span, e))?;
                self.mark_used(&ex.matched);
                self.undefined_in_from(&ex.unmatched, &known, span);
                let hint = || {
                    let keys: Vec<&str> = genv.keys().map(String::as_str).collect();
                    ex.unmatched
                        .iter()
                        .find_map(|n| suggest(n, keys.iter().copied()))
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default()
                };
                if ex.value.is_empty() {
                    let m = format!("empty platform value from expression {p}{}", hint());
                    return Err(graph_err(&self.file, span, m));
                }
                match Platform::parse_with_default(&ex.value, &self.opts.build_platform.normalized()) {
                    Some(pl) => pl.to_string(),
                    None => {
                        let m = format!("failed to parse platform {}: expected os/arch[/variant]{}", ex.value, hint());
                        return Err(graph_err(&self.file, span, m));
                    }
                }
            }
        };
        let mut st = StageCx {
            index: i,
            env: Rc::new(Vec::new()),
            args: Vec::new(),
            config: ImageConfig::default(),
            cmd_set: false,
            workdir_set: false,
            unresolved_base: None,
            steps: Vec::new(),
            last: String::new(),
            deps: BTreeSet::new(),
        };
        let earlier = defs[..i].iter().rposition(|d| d.name.as_deref() == Some(base.as_str()));
        let source = if base == "scratch" {
            st.config.env = vec![format!("PATH={DEFAULT_PATH}")];
            SourceOp::Scratch
        } else if let Some(j) = earlier {
            let id = self.stage(j, span)?;
            st.deps.insert(j);
            if let Some(s) = &self.done[j] {
                st.config = s.config.clone();
            }
            if let Some(c) = &self.carry[j] {
                st.env = c.env.clone();
                st.args = c.args.clone();
                st.workdir_set = c.workdir_set;
                st.unresolved_base = c.unresolved_base.clone();
            }
            SourceOp::Stage { index: j, id }
        } else {
            match self.resolver.resolve(&base, &platform) {
                Err(message) => {
                    return Err(FrontendError::Resolve {
                        loc: crate::error::Location::new(&self.file, span),
                        image: base,
                        message,
                    });
                }
                Ok(Some(info)) => {
                    let digest = info.digest.clone();
                    self.check_base_platform(&base, &platform, info.platform.as_deref(), span);
                    st.config = config_from(info);
                    SourceOp::Image { reference: base, platform: platform.clone(), resolved: true, digest }
                }
                Ok(None) => {
                    let m = format!(
                        "base image {base:?} could not be resolved offline; its ENV, WORKDIR, USER and ONBUILD are unknown"
                    );
                    self.push_diag(Diagnostic::note("BaseImageNotResolved", &self.file, span, m));
                    st.unresolved_base = Some(base.clone());
                    st.config.env = vec![format!("PATH={DEFAULT_PATH}")];
                    SourceOp::Image { reference: base, platform: platform.clone(), resolved: false, digest: None }
                }
            }
        };
        if earlier.is_none() {
            st.env = Rc::new(
                st.config
                    .env
                    .iter()
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (kv.clone(), String::new()),
                    })
                    .collect(),
            );
        }
        st.push(def.node, span, false, Op::Source(source));
        // Triggers of the base run first, and are not inherited further.
        let triggers = std::mem::take(&mut st.config.onbuild);
        for t in &triggers {
            self.trigger(&mut st, t, def.node)?;
        }
        for (ins, node) in &def.body {
            self.dispatch(&mut st, ins, At { node, span: node.span, trigger: false })?;
        }
        let unresolved_base = st.unresolved_base;
        self.carry[i] = Some(Carry { env: st.env, args: st.args, workdir_set: st.workdir_set, unresolved_base });
        let stage = Stage {
            index: i,
            name: def.name.clone(),
            span,
            platform,
            depends_on: st.deps,
            steps: st.steps,
            config: st.config,
            id: st.last.clone(),
        };
        self.done[i] = Some(stage);
        self.in_progress[i] = false;
        self.order.push(i);
        Ok(st.last)
    }

    /// UndefinedArgInFrom, with BuildKit's "did you mean" over the known names.
    fn undefined_in_from(&mut self, unmatched: &BTreeSet<String>, known: &[&str], span: Span) {
        for n in unmatched {
            if known.contains(&n.as_str()) {
                continue;
            }
            let mut m = format!("FROM argument '{n}' is not declared");
            if let Some(s) = suggest(n, known.iter().copied()) {
                m.push_str(&format!(" (did you mean {s}?)"));
            }
            self.warn("UndefinedArgInFrom", span, m);
        }
    }

    /// InvalidBaseImagePlatform: the resolved image is for another OS or architecture.
    fn check_base_platform(&mut self, image: &str, expected: &str, actual: Option<&str>, span: Span) {
        let (Some(want), Some(got)) = (Platform::parse(expected), actual.and_then(Platform::parse)) else { return };
        if want.os != got.os || want.arch != got.arch {
            let m = format!(
                "Base image {image} was pulled with platform {:?}, expected {:?} for current build",
                got.to_string(),
                want.to_string()
            );
            self.warn("InvalidBaseImagePlatform", span, m);
        }
    }

    fn mark_used(&mut self, names: &BTreeSet<String>) {
        for n in names {
            if self.opts.build_args.contains_key(n) {
                self.used_args.insert(n.clone());
            }
        }
    }

    /// Parse and run one ONBUILD trigger of the base image, blamed on the FROM line.
    fn trigger(&mut self, st: &mut StageCx, text: &str, from: &Node) -> Result<(), FrontendError> {
        let file = self.file.clone();
        let wrap = |e: FrontendError| graph_err(&file, from.span, format!("ONBUILD trigger {text:?}: {}", e.message()));
        let ast = parse(text, &self.file).map_err(wrap)?;
        if ast.nodes.len() != 1 {
            return Err(graph_err(&file, from.span, "onbuild trigger should be a single expression"));
        }
        for node in &ast.nodes {
            if matches!(node.keyword.as_str(), "onbuild" | "from" | "maintainer") {
                return Err(wrap(instr_err(
                    &file,
                    from.span,
                    format!("{} isn't allowed as an ONBUILD trigger", node.keyword.to_ascii_uppercase()),
                )));
            }
            let ins = parse_instruction(node, &self.file).map_err(wrap)?;
            self.dispatch(st, &ins, At { node, span: from.span, trigger: true }).map_err(wrap)?;
        }
        Ok(())
    }

    fn dispatch(&mut self, st: &mut StageCx, ins: &Instruction, at: At) -> Result<(), FrontendError> {
        match ins {
            Instruction::From { .. } => Ok(()),
            Instruction::Run { cmd, mounts, network, security, devices, heredocs } => {
                let run = RunFlags { mounts, network: network.as_deref(), security: security.as_deref(), devices };
                self.run(st, at, cmd, &run, heredocs)
            }
            Instruction::Cmd(c) => self.cmd(st, at, c),
            Instruction::Entrypoint(c) => self.entrypoint(st, at, c),
            Instruction::Shell(s) => self.shell(st, at, s),
            Instruction::Env { pairs, .. } => self.env(st, at, pairs),
            Instruction::Label { pairs, .. } => self.label(st, at, pairs),
            Instruction::Arg(args) => self.arg(st, at, args),
            Instruction::Maintainer(m) => self.maintainer(st, at, m),
            Instruction::Expose(p) => self.expose(st, at, p),
            Instruction::Volume(v) => self.volume(st, at, v),
            Instruction::User(u) => self.user(st, at, u),
            Instruction::Workdir(w) => self.workdir(st, at, w),
            Instruction::StopSignal(s) => self.stopsignal(st, at, s),
            Instruction::Onbuild(t) => self.onbuild(st, at, t),
            Instruction::Healthcheck(h) => self.healthcheck(st, at, h.as_ref()),
            Instruction::Copy(c) => self.copy(st, at, c),
        }
    }

    fn with_shell(st: &StageCx, cmd: &CmdLine) -> Vec<String> {
        match cmd {
            CmdLine::Exec(v) => v.clone(),
            CmdLine::Shell(s) => {
                let mut v = st.shell();
                v.push(s.clone());
                v
            }
        }
    }

    fn run(
        &mut self,
        st: &mut StageCx,
        at: At,
        cmd: &CmdLine,
        flags: &RunFlags,
        heredocs: &[Heredoc],
    ) -> Result<(), FrontendError> {
        let env = st.expand_env();
        let mut out_mounts = Vec::new();
        for (raw, span) in flags.mounts {
            let sp = if at.trigger { at.span } else { *span };
            out_mounts.push(self.mount(st, &env[..], raw, sp)?);
        }
        let mut devices = Vec::new();
        for (raw, span) in flags.devices {
            let sp = if at.trigger { at.span } else { *span };
            devices.push(self.device(raw, sp)?);
        }
        let (network, security) = (flags.network, flags.security);
        let network = match network.map(|n| self.lx.process_word(n, &env[..]).map(|e| e.value)) {
            None => NetworkMode::Default,
            Some(Ok(n)) => match n.as_str() {
                "default" => NetworkMode::Default,
                "none" => NetworkMode::None,
                "host" => NetworkMode::Host,
                _ => return Err(instr_err(&self.file, at.span, format!("unsupported network mode {n:?}"))),
            },
            Some(Err(e)) => return Err(graph_err(&self.file, at.span, e)),
        };
        let security = match security {
            None | Some("sandbox") => SecurityMode::Sandbox,
            Some("insecure") => SecurityMode::Insecure,
            Some(s) => return Err(instr_err(&self.file, at.span, format!("unsupported security mode {s:?}"))),
        };
        let files: Vec<InlineFile> =
            heredocs.iter().map(|h| InlineFile { name: h.name.clone(), data: body(h), mode: None }).collect();
        let mut files_out = files.clone();
        let args = match cmd {
            CmdLine::Shell(s) if !heredocs.is_empty() => {
                if parse_heredoc(s.trim()).is_some() {
                    let data = files[0].data.clone();
                    if data.starts_with("#!") {
                        // A script with a shebang: mount it and run it, as BuildKit does.
                        files_out[0].mode = Some(0o755);
                        out_mounts.push(Mount {
                            kind: MountType::Heredoc,
                            target: "/dev/pipes/".into(),
                            source: Some(files[0].name.clone()),
                            from: None,
                            readonly: true,
                            id: None,
                            sharing: None,
                            mode: Some(0o755),
                            uid: None,
                            gid: None,
                            required: false,
                            size: None,
                            env: None,
                        });
                        Self::with_shell(st, &CmdLine::Shell(path::join("/dev/pipes/", &files[0].name)))
                    } else {
                        Self::with_shell(st, &CmdLine::Shell(data))
                    }
                } else {
                    // Several heredocs or a command around one: give the shell the
                    // whole script and let it handle the heredocs itself.
                    let mut full = s.clone();
                    for h in heredocs {
                        full.push('\n');
                        full.push_str(&h.content);
                        full.push_str(&h.name);
                    }
                    Self::with_shell(st, &CmdLine::Shell(full))
                }
            }
            other => Self::with_shell(st, other),
        };
        let op = ExecOp {
            args,
            env: st.run_env(),
            cwd: st.workdir(),
            user: st.config.user.clone(),
            mounts: out_mounts,
            network,
            security,
            heredocs: files_out,
            devices,
        };
        st.push(at.node, at.span, at.trigger, Op::Exec(op));
        Ok(())
    }

    /// One `--device` value, BuildKit's `ParseDevice`: CSV fields in any order, `name=N`
    /// or the first field without a known key is the CDI name (`vendor.com/class=dev`
    /// included), `required` or `required=<bool>`. Not expanded (BuildKit does not).
    fn device(&mut self, raw: &str, span: Span) -> Result<Device, FrontendError> {
        let err = |m: String| instr_err(&self.file, span, m);
        let fields = split_csv(raw).map_err(&err)?;
        let (mut name, mut required) = (String::new(), false);
        for f in fields {
            let (key, value) = match f.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
                None => (f.to_ascii_lowercase(), None),
            };
            match (key.as_str(), value) {
                ("required", None) => required = true,
                ("required", Some(v)) => {
                    required = match v {
                        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                        "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                        _ => return Err(err(format!("invalid value for required: {v}"))),
                    }
                }
                ("name", Some(_)) if !name.is_empty() => {
                    return Err(err(format!("device name already set to {name}")));
                }
                ("name", Some(v)) => name = v.to_string(),
                _ if name.is_empty() => name = f.clone(),
                (_, None) => return Err(err(format!("invalid field '{f}' must be a key=value pair"))),
                (k, Some(_)) => return Err(err(format!("unexpected key '{k}' for device"))),
            }
        }
        if name.is_empty() {
            return Err(err(format!("invalid device {raw:?}: no device name")));
        }
        Ok(Device { name, required })
    }

    /// Resolve a `--from` value or mount `from=`: a stage name, a stage index, or an image.
    fn source_ref(&mut self, st: &mut StageCx, from: &str, span: Span) -> Result<SourceRef, FrontendError> {
        let lower = from.to_ascii_lowercase();
        let idx = match self.defs.iter().rposition(|d| d.name.as_deref() == Some(lower.as_str())) {
            Some(j) => Some(j),
            None => match from.parse::<usize>() {
                Ok(n) if n < self.defs.len() => Some(n),
                Ok(n) => {
                    return Err(graph_err(
                        &self.file,
                        span,
                        format!("invalid stage index {n}: the Dockerfile has {} stages", self.defs.len()),
                    ));
                }
                Err(_) => None,
            },
        };
        match idx {
            Some(j) if j == st.index => {
                let name = self.defs[j].name.clone().unwrap_or_else(|| j.to_string());
                Err(graph_err(&self.file, span, format!("circular dependency detected on stage: {name}")))
            }
            Some(j) => {
                let id = self.stage(j, span)?;
                st.deps.insert(j);
                Ok(SourceRef::Stage { index: j, id })
            }
            None => Ok(SourceRef::Image { reference: from.to_string() }),
        }
    }

    /// One `--mount` value, BuildKit's `parseMount` + `validateMount`: CSV fields read in
    /// order (so `type=` must come before type-specific keys), values expanded.
    fn mount(
        &mut self,
        st: &mut StageCx,
        env: &[(String, String)],
        raw: &str,
        span: Span,
    ) -> Result<Mount, FrontendError> {
        let err = |m: String| instr_err(&self.file, span, m);
        let fields = split_csv(raw).map_err(&err)?;
        let tname = |k: MountType| format!("{k:?}").to_ascii_lowercase();
        let secretish = |k: MountType| matches!(k, MountType::Secret | MountType::Ssh);
        let mut m = Mount {
            kind: MountType::Bind,
            target: String::new(),
            source: None,
            from: None,
            readonly: false,
            id: None,
            sharing: None,
            mode: None,
            uid: None,
            gid: None,
            required: false,
            size: None,
            env: None,
        };
        let mut ro_auto = true;
        let mut from = None;
        for f in &fields {
            let Some((k, v)) = f.split_once('=') else {
                match f.to_ascii_lowercase().as_str() {
                    "readonly" | "ro" => {
                        m.readonly = true;
                        ro_auto = false;
                    }
                    "readwrite" | "rw" => {
                        m.readonly = false;
                        ro_auto = false;
                    }
                    "required" if secretish(m.kind) => m.required = true,
                    "required" => {
                        return Err(err(format!("unexpected key 'required' for mount type '{}'", tname(m.kind))));
                    }
                    _ => return Err(err(format!("invalid field '{f}' must be a key=value pair"))),
                }
                continue;
            };
            let key = k.to_ascii_lowercase();
            if key == "from" && v.char_indices().any(|(i, c)| c == '$' && i + 1 < v.len()) {
                return Err(err("'from' doesn't support variable expansion, define alias stage instead".into()));
            }
            let v = self.lx.process_word(v, env).map_err(&err)?.value;
            let bool_of = |v: &str| -> Result<bool, FrontendError> {
                // Go's strconv.ParseBool.
                match v {
                    "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
                    "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
                    _ => Err(err(format!("invalid value for {key}: {v}"))),
                }
            };
            let num = |v: &str, radix: u32| -> Result<u32, FrontendError> {
                u32::from_str_radix(v, radix).map_err(|_| err(format!("invalid value {v} for {key}")))
            };
            match key.as_str() {
                "type" => {
                    m.kind = match v.to_ascii_lowercase().as_str() {
                        "bind" => MountType::Bind,
                        "cache" => MountType::Cache,
                        "tmpfs" => MountType::Tmpfs,
                        "secret" => MountType::Secret,
                        "ssh" => MountType::Ssh,
                        _ => return Err(err(format!("unsupported mount type {v:?}"))),
                    }
                }
                "from" => from = Some(v),
                "source" | "src" => m.source = Some(v),
                "target" | "dst" | "destination" => m.target = v,
                "readonly" | "ro" => {
                    m.readonly = bool_of(&v)?;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = !bool_of(&v)?;
                    ro_auto = false;
                }
                "required" if secretish(m.kind) => m.required = bool_of(&v)?,
                "size" if m.kind == MountType::Tmpfs => {
                    m.size = Some(parse_size(&v).ok_or_else(|| err(format!("invalid value for size: {v}")))?)
                }
                "env" if m.kind == MountType::Secret => m.env = Some(v),
                "required" | "size" | "env" => {
                    return Err(err(format!("unexpected key '{key}' for mount type '{}'", tname(m.kind))));
                }
                "id" => m.id = Some(v),
                "sharing" => {
                    m.sharing = Some(match v.to_ascii_lowercase().as_str() {
                        "shared" => Sharing::Shared,
                        "private" => Sharing::Private,
                        "locked" => Sharing::Locked,
                        _ => return Err(err(format!("unsupported sharing value {v:?}"))),
                    });
                }
                "mode" => m.mode = Some(num(&v, 8)?),
                "uid" => m.uid = Some(num(&v, 10)?),
                "gid" => m.gid = Some(num(&v, 10)?),
                _ => return Err(err(format!("unexpected key '{key}' in '{f}'"))),
            }
        }
        let kind = m.kind;
        let tn = tname(kind);
        if !matches!(kind, MountType::Secret | MountType::Ssh | MountType::Cache) {
            for (set, what) in [(m.mode.is_some(), "mode"), (m.uid.is_some(), "uid"), (m.gid.is_some(), "gid")] {
                if set {
                    return Err(err(format!("{what} not allowed for {tn:?} type mounts")));
                }
            }
        }
        if ro_auto {
            m.readonly = !matches!(kind, MountType::Cache | MountType::Tmpfs);
        }
        if kind == MountType::Secret {
            if from.is_some() {
                return Err(err("secret mount should not have a from".into()));
            }
            if m.sharing.is_some() {
                return Err(err("secret mount should not define sharing".into()));
            }
            if m.source.is_none() && m.target.is_empty() && m.id.is_none() && m.env.is_none() {
                return Err(err("invalid secret mount. one of source, target required".into()));
            }
            if m.source.is_some() && m.id.is_some() {
                return Err(err("both source and id can't be set".into()));
            }
        }
        if m.sharing.is_some() && kind != MountType::Cache {
            return Err(err(format!("invalid cache sharing set for {tn} mount")));
        }
        let wd = st.workdir();
        let abs = |t: &str| if t.starts_with('/') { path::clean(t) } else { path::join(&wd, t) };
        match kind {
            MountType::Secret => {
                // The source names the secret; the id defaults to the target's file name and
                // the target to /run/secrets/<id>.
                if let Some(s) = m.source.take() {
                    m.id = Some(s);
                }
                if m.id.is_none() {
                    m.id = Some(m.target.rsplit('/').next().unwrap_or_default().to_string());
                }
                if m.target.is_empty() && m.env.is_none() {
                    m.target = format!("/run/secrets/{}", m.id.as_deref().unwrap_or_default());
                }
            }
            MountType::Ssh => {
                m.id.get_or_insert_with(|| "default".into());
                if m.target.is_empty() {
                    m.target = "/run/buildkit/ssh_agent.0".into();
                }
            }
            _ => {
                let t = abs(&m.target);
                if t == "/" {
                    return Err(err(format!("invalid mount target {t:?}")));
                }
                m.target = t;
            }
        }
        if !m.target.is_empty() {
            m.target = abs(&m.target);
        }
        if kind == MountType::Cache {
            m.id.get_or_insert_with(|| m.target.clone());
            m.sharing.get_or_insert(Sharing::Shared);
        }
        m.from = match (kind, from) {
            (MountType::Bind | MountType::Cache, Some(f)) => Some(self.source_ref(st, &f, span)?),
            (MountType::Bind, None) => Some(SourceRef::Context),
            // BuildKit ignores `from=` on tmpfs and ssh mounts.
            (_, _) => None,
        };
        Ok(m)
    }

    /// JSONArgsRecommended, at dispatch as BuildKit: only when no SHELL is in force
    /// (one set in this stage or inherited from its base counts).
    fn json_args_lint(&mut self, st: &StageCx, at: At, c: &CmdLine, kw: &str) {
        if matches!(c, CmdLine::Shell(_)) && st.config.shell.as_ref().is_none_or(|s| s.is_empty()) && !at.trigger {
            let m = format!("JSON arguments recommended for {kw} to prevent unintended behavior related to OS signals");
            self.warn("JSONArgsRecommended", at.span, m);
        }
    }

    fn cmd(&mut self, st: &mut StageCx, at: At, c: &CmdLine) -> Result<(), FrontendError> {
        self.json_args_lint(st, at, c, "CMD");
        let cmd = Self::with_shell(st, c);
        st.config.cmd = Some(cmd.clone());
        st.cmd_set = true;
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::Cmd { cmd }));
        Ok(())
    }

    fn entrypoint(&mut self, st: &mut StageCx, at: At, c: &CmdLine) -> Result<(), FrontendError> {
        self.json_args_lint(st, at, c, "ENTRYPOINT");
        let entrypoint = match c {
            // `ENTRYPOINT ""` clears it rather than running an empty shell command.
            CmdLine::Shell(s) if s.trim().is_empty() => Vec::new(),
            _ => Self::with_shell(st, c),
        };
        st.config.entrypoint = Some(entrypoint.clone());
        // BuildKit: a new ENTRYPOINT drops the base's CMD unless this stage set one.
        let cmd_reset = !st.cmd_set;
        if cmd_reset {
            st.config.cmd = None;
        }
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::Entrypoint { entrypoint, cmd_reset }));
        Ok(())
    }

    fn shell(&mut self, st: &mut StageCx, at: At, s: &[String]) -> Result<(), FrontendError> {
        st.config.shell = Some(s.to_vec());
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::Shell { shell: s.to_vec() }));
        Ok(())
    }

    fn pairs(
        &mut self,
        st: &StageCx,
        at: At,
        pairs: &[(String, String)],
    ) -> Result<Vec<(String, String)>, FrontendError> {
        // The whole instruction sees the values from before it: `ENV a=1 b=$a` gives b
        // the old a.
        let env = st.expand_env();
        let mut out = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let k = self.expand(st, &env[..], k, at.span)?;
            let v = self.expand(st, &env[..], v, at.span)?;
            out.push((k, v));
        }
        Ok(out)
    }

    fn env(&mut self, st: &mut StageCx, at: At, pairs: &[(String, String)]) -> Result<(), FrontendError> {
        let pairs = self.pairs(st, at, pairs)?;
        for (k, v) in &pairs {
            st.set_env(k, v);
        }
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::Env { pairs }));
        Ok(())
    }

    fn label(&mut self, st: &mut StageCx, at: At, pairs: &[(String, String)]) -> Result<(), FrontendError> {
        let pairs = self.pairs(st, at, pairs)?;
        for (k, v) in &pairs {
            st.config.labels.insert(k.clone(), v.clone());
        }
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::Label { pairs }));
        Ok(())
    }

    fn arg(&mut self, st: &mut StageCx, at: At, args: &[(String, Option<String>)]) -> Result<(), FrontendError> {
        let mut pairs = Vec::with_capacity(args.len());
        for (k, default) in args {
            if self.opts.build_args.contains_key(k) {
                self.used_args.insert(k.clone());
            }
            let value = match (self.opts.build_args.get(k), default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => {
                    let env = st.expand_env();
                    Some(self.expand(st, &env[..], d, at.span)?)
                }
                // `ARG name` inside a stage takes the global scope's value: a global
                // ARG's, or a platform ARG's automatic one.
                (None, None) => self.global_env.get(k).cloned(),
            };
            if let Some(v) = &value {
                st.set_state_env(k, v);
            }
            st.args.retain(|(n, _)| n != k);
            st.args.push((k.clone(), value.clone()));
            pairs.push((k.clone(), value));
        }
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::Arg { pairs }));
        Ok(())
    }

    fn maintainer(&mut self, st: &mut StageCx, at: At, m: &str) -> Result<(), FrontendError> {
        st.config.author = Some(m.to_string());
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::Maintainer { author: m.to_string() }));
        Ok(())
    }

    fn expose(&mut self, st: &mut StageCx, at: At, ports: &[String]) -> Result<(), FrontendError> {
        let env = st.expand_env();
        let mut out = Vec::new();
        for p in ports {
            let v = self.expand(st, &env[..], p, at.span)?;
            for word in v.split_whitespace() {
                let (port, proto) = word.split_once('/').unwrap_or((word, "tcp"));
                if proto.chars().any(|c| c.is_ascii_uppercase()) {
                    self.warn(
                        "ExposeProtoCasing",
                        at.span,
                        format!("Defined protocol '{word}' in EXPOSE instruction should be lowercase"),
                    );
                }
                let proto = proto.to_ascii_lowercase();
                if port.contains(':') {
                    self.warn(
                        "ExposeInvalidFormat",
                        at.span,
                        format!(
                            "EXPOSE instruction should not define an IP address or host-port mapping, found '{word}'"
                        ),
                    );
                }
                let port = port.rsplit(':').next().unwrap_or(port);
                let bad = || instr_err(&self.file, at.span, format!("Invalid containerPort: {port}"));
                let (lo, hi) = match port.split_once('-') {
                    Some((a, b)) => (a.parse::<u16>().map_err(|_| bad())?, b.parse::<u16>().map_err(|_| bad())?),
                    None => {
                        let n = port.parse::<u16>().map_err(|_| bad())?;
                        (n, n)
                    }
                };
                if hi < lo {
                    return Err(bad());
                }
                for n in lo..=hi {
                    out.push(format!("{n}/{proto}"));
                }
            }
        }
        st.config.exposed_ports.extend(out.iter().cloned());
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::Expose { ports: out }));
        Ok(())
    }

    fn volume(&mut self, st: &mut StageCx, at: At, vols: &[String]) -> Result<(), FrontendError> {
        let env = st.expand_env();
        let mut paths = Vec::new();
        for v in vols {
            let p = self.expand(st, &env[..], v, at.span)?;
            if p.trim().is_empty() {
                return Err(instr_err(&self.file, at.span, "VOLUME specified can not be an empty string"));
            }
            paths.push(p);
        }
        st.config.volumes.extend(paths.iter().cloned());
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::Volume { paths }));
        Ok(())
    }

    fn user(&mut self, st: &mut StageCx, at: At, u: &str) -> Result<(), FrontendError> {
        let env = st.expand_env();
        let user = self.expand(st, &env[..], u, at.span)?;
        st.config.user = user.clone();
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::User { user }));
        Ok(())
    }

    fn workdir(&mut self, st: &mut StageCx, at: At, w: &str) -> Result<(), FrontendError> {
        let env = st.expand_env();
        let w = self.expand(st, &env[..], w, at.span)?;
        if w.is_empty() {
            return Err(instr_err(&self.file, at.span, "WORKDIR requires exactly one argument"));
        }
        let path = if w.starts_with('/') {
            path::clean(&w)
        } else {
            if !st.workdir_set && !at.trigger {
                self.warn(
                    "WorkdirRelativePath",
                    at.span,
                    format!("Relative workdir {w:?} can have unexpected results if the base image changes"),
                );
            }
            path::join(&st.workdir(), &w)
        };
        st.workdir_set = true;
        // BuildKit (system.NormalizeWorkdir) keeps an absolute WORKDIR as written, trailing
        // slash included; the step itself gets the clean path.
        st.config.working_dir = if w.starts_with('/') { w.clone() } else { path.clone() };
        let user = st.config.user.clone();
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::Workdir { path, user }));
        Ok(())
    }

    fn stopsignal(&mut self, st: &mut StageCx, at: At, s: &str) -> Result<(), FrontendError> {
        let env = st.expand_env();
        let signal = self.expand(st, &env[..], s, at.span)?;
        if !valid_signal(&signal) {
            return Err(instr_err(&self.file, at.span, format!("invalid signal: {signal}")));
        }
        st.config.stop_signal = Some(signal.clone());
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::StopSignal { signal }));
        Ok(())
    }

    fn onbuild(&mut self, st: &mut StageCx, at: At, t: &str) -> Result<(), FrontendError> {
        st.config.onbuild.push(t.to_string());
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::Onbuild { trigger: t.to_string() }));
        Ok(())
    }

    fn healthcheck(&mut self, st: &mut StageCx, at: At, h: Option<&Health>) -> Result<(), FrontendError> {
        let check = Some(match h {
            None => Healthcheck {
                test: vec!["NONE".into()],
                interval: 0,
                timeout: 0,
                start_period: 0,
                start_interval: 0,
                retries: 0,
            },
            Some(h) => Healthcheck {
                test: h.test.clone(),
                interval: h.interval,
                timeout: h.timeout,
                start_period: h.start_period,
                start_interval: h.start_interval,
                retries: h.retries,
            },
        });
        st.config.healthcheck = check.clone();
        st.push(at.node, at.span, at.trigger, Op::Config(ConfigChange::Healthcheck { check }));
        Ok(())
    }

    fn copy(&mut self, st: &mut StageCx, at: At, c: &CopyArgs) -> Result<(), FrontendError> {
        let env = st.expand_env();
        let from = match &c.from {
            None => SourceRef::Context,
            Some(f) => {
                let sp = if at.trigger { at.span } else { c.from_span.unwrap_or(at.span) };
                let same = self.lx.process_word(f, &Env::new()).is_ok_and(|e| e.value == *f);
                if !same {
                    return Err(graph_err(
                        &self.file,
                        sp,
                        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                    ));
                }
                let r = self.source_ref(st, f, sp)?;
                if let SourceRef::Stage { index, .. } = &r {
                    if *index > st.index {
                        let me = self.defs[st.index].name.clone().unwrap_or_else(|| format!("stage-{}", st.index));
                        return Err(graph_err(
                            &self.file,
                            sp,
                            format!("cannot copy from stage {f:?}, it needs to be defined before current stage {me:?}"),
                        ));
                    }
                }
                r
            }
        };
        let mut sources = Vec::with_capacity(c.sources.len());
        for s in &c.sources {
            sources.push(self.expand(st, &env[..], s, at.span)?);
        }
        if let (Some(ig), SourceRef::Context) = (self.ignore, &from) {
            let cmd = if c.add { "Add" } else { "Copy" };
            for src in &sources {
                if c.add && (src.starts_with("http://") || src.starts_with("https://") || src.starts_with("git@")) {
                    continue;
                }
                let clean = path::clean(src);
                if ig.matches(&clean) {
                    let m = format!("Attempting to {cmd} file {clean:?} that is excluded by .dockerignore");
                    self.warn("CopyIgnoredFile", at.span, m);
                }
            }
        }
        let mut inline_files = Vec::new();
        for h in &c.inline {
            let mut data = body(h);
            if h.expand {
                // Heredoc bodies expand variables but keep quotes (BuildKit's raw expansion).
                let lx = Lexer { skip_quotes: true, ..Lexer::new('\\') };
                data = lx.process_word(&data, &env[..]).map_err(|e| graph_err(&self.file, at.span, e))?.value;
            }
            inline_files.push(InlineFile { name: h.name.clone(), data, mode: None });
        }
        let raw_dest = self.expand(st, &env[..], &c.dest, at.span)?;
        // `dir/.` names the directory itself, as `dir/` does (BuildKit keeps the `/.`).
        let dir_syntax = raw_dest.is_empty() || raw_dest == "." || raw_dest.ends_with('/') || raw_dest.ends_with("/.");
        let mut dest =
            if raw_dest.starts_with('/') { path::clean(&raw_dest) } else { path::join(&st.workdir(), &raw_dest) };
        if dir_syntax && !dest.ends_with('/') {
            dest.push('/');
        }
        let dest_is_dir = dir_syntax || sources.len() + inline_files.len() > 1;
        let opt = |s: &Option<String>, me: &mut Self| -> Result<Option<String>, FrontendError> {
            match s {
                None => Ok(None),
                Some(v) => Ok(Some(me.expand(st, &env[..], v, at.span)?)),
            }
        };
        let chown = opt(&c.chown, self)?;
        let chmod = opt(&c.chmod, self)?;
        if let Some(m) = &chmod {
            let octal = !m.is_empty() && m.chars().all(|c| ('0'..='7').contains(&c)) && m.len() <= 4;
            let symbolic = !m.is_empty() && m.chars().all(|c| "ugoa+-=rwxXst,".contains(c));
            if !octal && !symbolic {
                return Err(instr_err(&self.file, at.span, format!("invalid chmod parameter: {m}")));
            }
        }
        let checksum = opt(&c.checksum, self)?;
        let mut exclude = Vec::new();
        for e in &c.exclude {
            exclude.push(self.expand(st, &env[..], e, at.span)?);
        }
        let op = CopyOp {
            add: c.add,
            from,
            sources,
            inline_files,
            dest,
            dest_is_dir,
            chown,
            chmod,
            link: c.link,
            exclude,
            parents: c.parents,
            checksum,
            keep_git_dir: c.keep_git_dir,
            unpack: c.unpack,
        };
        st.push(at.node, at.span, at.trigger, Op::Copy(op));
        Ok(())
    }
}

/// moby's `signal.ParseSignal` on Linux: a non-zero number or a signal name, `SIG` optional.
fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<i64>() {
        return n != 0;
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    const NAMES: [&str; 36] = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL",
        "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1",
        "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
    ];
    if NAMES.contains(&name) {
        return true;
    }
    let rt = |p: &str, max: u32| {
        name.strip_prefix(p).and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| (1..=max).contains(&n))
    };
    rt("RTMIN+", 15) || rt("RTMAX-", 14)
}

/// A heredoc body with `<<-` tab stripping applied.
fn body(h: &Heredoc) -> String {
    if !h.chomp {
        return h.content.clone();
    }
    h.content.split_inclusive('\n').map(|l| l.trim_start_matches('\t')).collect()
}

fn config_from(i: BaseImageInfo) -> ImageConfig {
    let mut env = i.env;
    // BuildKit makes sure PATH is always set.
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    ImageConfig {
        env,
        working_dir: i.working_dir,
        user: i.user,
        cmd: i.cmd,
        entrypoint: i.entrypoint,
        shell: i.shell,
        labels: i.labels,
        exposed_ports: i.exposed_ports,
        volumes: i.volumes,
        stop_signal: i.stop_signal,
        healthcheck: i.healthcheck,
        onbuild: i.onbuild,
        author: None,
    }
}

/// Split a `--mount` value into fields like Go's encoding/csv: commas separate, a field
/// that starts with `"` is quoted and `""` inside it is a quote.
fn split_csv(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("invalid mount {s:?}: unterminated quoted field")),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => {}
                Some(_) => return Err(format!("invalid mount {s:?}: extraneous text after quoted field")),
            }
            out.push(field);
            continue;
        }
        loop {
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => break,
                Some(c) => field.push(c),
            }
        }
        out.push(field);
    }
}

/// docker's `units.RAMInBytes`: `64m`, `1g`, `1024`, `1.5GiB`.
fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let n: f64 = t[..num_end].parse().ok()?;
    let unit = t[num_end..].trim().trim_end_matches("ib").trim_end_matches('b');
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0f64.powi(3),
        "t" => 1024.0f64.powi(4),
        "p" => 1024.0f64.powi(5),
        _ => return None,
    };
    Some((n * mult) as u64)
}
