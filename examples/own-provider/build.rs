fn main() {
    paytokens_codegen::Builder::new("acme.yaml").generate();
}
