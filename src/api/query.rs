//! `Query<T>` for query strings, with 400 errors that name the parameter at fault (actix's own
//! extractor loses the name for unknown enum values and wrong types).

use super::ApiError;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use std::future::{ready, Ready};

pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_pairs(req.query_string()));
        ready(
            serde_path_to_error::deserialize(de)
                .map(Query)
                .map_err(|e| {
                    let path = e.path().to_string();
                    let message = e.into_inner().to_string();
                    let field = if path == "." {
                        message.split('`').nth(1).map(str::to_string)
                    } else {
                        Some(path)
                    };
                    let text = match &field {
                        Some(f) => format!("query parameter {f}: {message}"),
                        None => format!("query string: {message}"),
                    };
                    let mut err = ApiError::bad_request(text);
                    err.field = field;
                    err
                }),
        )
    }
}

fn form_urlencoded_pairs(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}
