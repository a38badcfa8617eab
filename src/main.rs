// glibc's allocator took about 60% of the store's apply time under load
// (perf, docs/benchmarks.md); jemalloc roughly doubles write throughput.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(shoal::cli::main());
}
