fn main() {
    std::process::exit(shoal::cli::main());
}
