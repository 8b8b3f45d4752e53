// What the build proves the assembled root compiles and runs: std's I/O, threads and
// collections, libm's functions, a caught panic (unwinding) and formatting.
use std::collections::HashMap;
use std::io::{self, Read, Write};

fn main() {
    let mut input = String::new();
    io::stdin().read_to_string(&mut input).unwrap();
    let worker = std::thread::spawn(|| (2.0f64).sqrt().powi(2).round() as u64);
    let mut counts: HashMap<char, u64> = HashMap::new();
    for c in input.chars() {
        *counts.entry(c).or_default() += 1;
    }
    std::panic::set_hook(Box::new(|_| {})); // nothing on stderr
    let caught = std::panic::catch_unwind(|| panic!("caught")).is_err();
    let two = worker.join().unwrap();
    let out = format!("probe {} {} {}\n", counts[&'x'] * two, caught, (0.5f64).sin() > 0.4);
    io::stdout().write_all(out.as_bytes()).unwrap();
}
