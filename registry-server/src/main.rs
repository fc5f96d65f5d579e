fn main() {
    eprintln!("rbuild-registry: not built yet");
    std::process::exit(2);
}
