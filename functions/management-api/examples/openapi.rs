//! Prints the OpenAPI document (`make openapi` writes it to functions/management-api/openapi.json).

use utoipa::OpenApi;

fn main() {
    let doc = management_api::openapi::ApiDoc::openapi();
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).expect("the document serialises")
    );
}
