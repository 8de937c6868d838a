//! Typed access to a node's attributes, each mismatch an [`Error::Attribute`] naming the node, the attribute,
//! what was expected and what was found.

use crate::error::{Error, Result};
use crate::proto::NodeProto;
use crate::proto::attribute_proto::AttributeType;

/// A node's name and operator, for errors: the name, or its first output's when it has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLabel {
    /// The node's name.
    pub name: String,
    /// The node's operator.
    pub op: String,
}

impl NodeLabel {
    /// The label of `node`.
    pub fn of(node: &NodeProto) -> Self {
        let name = match node.name() {
            "" => node.output.iter().find(|o| !o.is_empty()).map_or("(unnamed)", String::as_str),
            name => name,
        };
        NodeLabel { name: name.to_owned(), op: node.op_type().to_owned() }
    }

    /// An [`Error::Attribute`] for this node.
    pub fn attribute_error(&self, attribute: &str, expected: impl Into<String>, found: impl Into<String>) -> Error {
        Error::Attribute {
            node: Box::new(self.clone()),
            attribute: attribute.to_owned(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// An [`Error::Unsupported`] for this node.
    pub fn unsupported(&self, reason: impl Into<String>) -> Error {
        Error::Unsupported { node: Box::new(self.clone()), reason: reason.into() }
    }
}

impl std::fmt::Display for NodeLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` ({})", self.name, self.op)
    }
}

/// The attributes of one node.
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    node: &'a NodeProto,
}

impl<'a> Attributes<'a> {
    /// The attributes of `node`.
    pub fn of(node: &'a NodeProto) -> Self {
        Attributes { node }
    }

    fn find(&self, name: &str, wanted: AttributeType) -> Result<Option<&'a crate::proto::AttributeProto>> {
        let Some(attribute) = self.node.attribute.iter().find(|a| a.name() == name) else { return Ok(None) };
        if attribute.ref_attr_name.is_some() {
            return Err(self.label().attribute_error(name, "a value", "a reference to a function's attribute"));
        }
        // Files written without the type field are read by the field that holds a value.
        match attribute.r#type() {
            AttributeType::Undefined => Ok(Some(attribute)),
            found if found == wanted => Ok(Some(attribute)),
            found => Err(self.label().attribute_error(name, wanted.as_str_name(), found.as_str_name())),
        }
    }

    fn label(&self) -> NodeLabel {
        NodeLabel::of(self.node)
    }

    /// An integer attribute.
    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.find(name, AttributeType::Int)?.and_then(|a| a.i))
    }

    /// A float attribute.
    pub fn float(&self, name: &str) -> Result<Option<f32>> {
        Ok(self.find(name, AttributeType::Float)?.and_then(|a| a.f))
    }

    /// A string attribute, as UTF-8.
    pub fn string(&self, name: &str) -> Result<Option<String>> {
        match self.find(name, AttributeType::String)?.and_then(|a| a.s.as_ref()) {
            None => Ok(None),
            Some(bytes) => self.utf8(name, bytes).map(Some),
        }
    }

    /// A tensor attribute.
    pub fn tensor(&self, name: &str) -> Result<Option<&'a crate::proto::TensorProto>> {
        Ok(self.find(name, AttributeType::Tensor)?.and_then(|a| a.t.as_ref()))
    }

    /// A list of floats (empty when absent).
    pub fn floats(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.find(name, AttributeType::Floats)?.map(|a| a.floats.clone()).unwrap_or_default())
    }

    /// A list of integers (empty when absent).
    pub fn ints(&self, name: &str) -> Result<Vec<i64>> {
        Ok(self.find(name, AttributeType::Ints)?.map(|a| a.ints.clone()).unwrap_or_default())
    }

    /// A list of strings, as UTF-8 (empty when absent).
    pub fn strings(&self, name: &str) -> Result<Vec<String>> {
        match self.find(name, AttributeType::Strings)? {
            None => Ok(Vec::new()),
            Some(a) => a.strings.iter().map(|s| self.utf8(name, s)).collect(),
        }
    }

    fn utf8(&self, name: &str, bytes: &[u8]) -> Result<String> {
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            self.label().attribute_error(name, "UTF-8 text", format!("{} bytes of other data", bytes.len()))
        })
    }

    /// A non-negative integer attribute that must fit a size, or `default` when absent.
    pub fn size(&self, name: &str, default: usize) -> Result<usize> {
        match self.int(name)? {
            None => Ok(default),
            Some(v) => {
                usize::try_from(v).map_err(|_| self.label().attribute_error(name, "a size of 0 or more", v.to_string()))
            }
        }
    }

    /// An integer attribute that must be 0 or 1, or `default` when absent.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool> {
        match self.int(name)? {
            None => Ok(default),
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(v) => Err(self.label().attribute_error(name, "0 or 1", v.to_string())),
        }
    }

    /// The names of every attribute the node has.
    pub fn names(&self) -> impl Iterator<Item = &'a str> {
        self.node.attribute.iter().map(|a| a.name())
    }
}
