//! `cubbyhole/`: private storage per token. Core hands this backend a view
//! scoped to the calling token (keyed by the token's hash), so one token can
//! never see another's cubbyhole; revoking a token deletes its cubbyhole.

use serde_json::Value;

use arca_sdk::{
    Ctx, Field, FieldType, Framework, HandlerResult, LogicalError, Operation, Path, Response,
};

pub(crate) struct Cubbyhole;

impl Cubbyhole {
    async fn read(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        if path.is_empty() {
            return Err(LogicalError::invalid("missing path"));
        }
        match c.storage.get(&path).await? {
            None => Ok(None),
            Some(b) => {
                let v: Value = serde_json::from_slice(&b).map_err(LogicalError::internal)?;
                Ok(Some(Response::json(v)))
            }
        }
    }

    async fn write(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        if path.is_empty() || path.ends_with('/') {
            return Err(LogicalError::invalid("missing or invalid path"));
        }
        let mut data = c.req.data.clone();
        data.remove("path");
        if data.is_empty() {
            return Err(LogicalError::invalid("missing data fields"));
        }
        c.storage
            .put(
                &path,
                serde_json::to_vec(&data).map_err(LogicalError::internal)?,
            )
            .await?;
        Ok(None)
    }

    async fn delete(&self, c: Ctx<'_>) -> HandlerResult {
        c.storage.delete(&c.data.str_or("path", "")?).await?;
        Ok(None)
    }

    async fn list(&self, c: Ctx<'_>) -> HandlerResult {
        let path = c.data.str_or("path", "")?;
        let keys = c.storage.list(&path).await?;
        if keys.is_empty() {
            return Err(LogicalError::NotFound);
        }
        Ok(Some(Response::list(keys)))
    }
}

pub(crate) fn backend() -> Framework<Cubbyhole> {
    Framework::new(
        "cubbyhole",
        Cubbyhole,
        vec![Path::new("(?P<path>.*)")
            .field(Field::new(
                "path",
                FieldType::String,
                "Location of the secret in the cubbyhole.",
            ))
            .arbitrary_fields()
            .op(Operation::Read, |b: &Cubbyhole, c| Box::pin(b.read(c)))
            .op(Operation::Update, |b: &Cubbyhole, c| Box::pin(b.write(c)))
            .op(Operation::Delete, |b: &Cubbyhole, c| Box::pin(b.delete(c)))
            .op(Operation::List, |b: &Cubbyhole, c| Box::pin(b.list(c)))
            .help("Pass-through secret storage private to the calling token.")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_sdk::testing::InmemStorage;
    use arca_sdk::{Backend, Request};
    use serde_json::json;

    #[tokio::test]
    async fn write_read_list_delete() {
        let b = backend();
        assert!(b.lint().is_empty(), "{:?}", b.lint());
        let s = InmemStorage::new();
        let w = Request::new(Operation::Update, "a/b").with_data(json!({"k": "v"}));
        b.handle(&w, &s).await.unwrap();
        let r = b
            .handle(&Request::new(Operation::Read, "a/b"), &s)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.data.unwrap()["k"], "v");
        let l = b
            .handle(&Request::new(Operation::List, "a/"), &s)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(l.data.unwrap()["keys"], json!(["b"]));
        b.handle(&Request::new(Operation::Delete, "a/b"), &s)
            .await
            .unwrap();
        assert!(b
            .handle(&Request::new(Operation::Read, "a/b"), &s)
            .await
            .unwrap()
            .is_none());
        let empty = Request::new(Operation::Update, "x");
        assert!(b.handle(&empty, &s).await.is_err());
    }
}
