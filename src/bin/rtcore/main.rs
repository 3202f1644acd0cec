fn main() {
    println!("rtcore");
}
