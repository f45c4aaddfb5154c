//! What progenitor adds to every request beyond the spec, taken out of its
//! output: the `api-version` header (from `info.version`) and
//! `Accept: application/json`. No provider document lists either, and a
//! request carries only what its document lists (a spec declares any other
//! header as a parameter).

use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Stmt};

/// Removes the headers progenitor adds from every generated method.
pub fn only_what_the_spec_lists(file: &mut syn::File) {
    Strip.visit_file_mut(file);
}

struct Strip;

/// `header_map.append(HeaderName::from_static("api-version"), …)`.
fn is_api_version(stmt: &Stmt) -> bool {
    let Stmt::Expr(Expr::MethodCall(call), _) = stmt else {
        return false;
    };
    call.method == "append"
        && call
            .args
            .first()
            .is_some_and(|arg| quote::quote!(#arg).to_string().contains("\"api-version\""))
}

/// `.header(::reqwest::header::ACCEPT, …)`.
fn is_accept(expr: &Expr) -> bool {
    let Expr::MethodCall(call) = expr else {
        return false;
    };
    call.method == "header"
        && matches!(call.args.first(), Some(Expr::Path(path))
            if path.path.segments.last().is_some_and(|s| s.ident == "ACCEPT"))
}

impl VisitMut for Strip {
    fn visit_block_mut(&mut self, block: &mut syn::Block) {
        block.stmts.retain(|stmt| !is_api_version(stmt));
        visit_mut::visit_block_mut(self, block);
    }

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        while is_accept(expr) {
            let Expr::MethodCall(call) = expr else {
                unreachable!("checked by is_accept")
            };
            *expr = (*call.receiver).clone();
        }
        visit_mut::visit_expr_mut(self, expr);
    }
}
