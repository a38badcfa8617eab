use super::*;

#[test]
fn cpu_quantities() {
    assert_eq!(parse_cpu_millis("500m"), Ok(500));
    assert_eq!(parse_cpu_millis("1"), Ok(1000));
    assert_eq!(parse_cpu_millis("0.5"), Ok(500));
    assert_eq!(parse_cpu_millis(".5"), Ok(500));
    assert_eq!(parse_cpu_millis("2."), Ok(2000));
    assert_eq!(parse_cpu_millis("+1.5"), Ok(1500));
    assert_eq!(parse_cpu_millis("100m"), Ok(100));
    assert_eq!(parse_cpu_millis("0.0001"), Ok(1), "rounds up to 1m");
    assert_eq!(parse_cpu_millis("250000u"), Ok(250));
    assert_eq!(parse_cpu_millis("1k"), Ok(1_000_000));
    assert_eq!(parse_cpu_millis("1e-3"), Ok(1));
    assert_eq!(parse_cpu_millis("0"), Ok(0));
    assert_eq!(parse_cpu_millis("-0"), Ok(0));
}

#[test]
fn memory_quantities() {
    assert_eq!(parse_memory_bytes("128Mi"), Ok(128 << 20));
    assert_eq!(parse_memory_bytes("1G"), Ok(1_000_000_000));
    assert_eq!(parse_memory_bytes("1e3"), Ok(1000));
    assert_eq!(parse_memory_bytes("1E3"), Ok(1000));
    assert_eq!(parse_memory_bytes("1.5Gi"), Ok(3 << 29));
    assert_eq!(parse_memory_bytes("512"), Ok(512));
    assert_eq!(parse_memory_bytes("100Mi"), Ok(100 << 20));
    assert_eq!(parse_memory_bytes("1Ki"), Ok(1024));
    assert_eq!(parse_memory_bytes("2k"), Ok(2000));
    assert_eq!(parse_memory_bytes("1M"), Ok(1_000_000));
    assert_eq!(parse_memory_bytes("1E"), Ok(1_000_000_000_000_000_000));
    assert_eq!(parse_memory_bytes("15Ei"), Ok(15 << 60));
    assert_eq!(
        parse_memory_bytes("100m"),
        Ok(1),
        "fractions of a byte round up"
    );
}

#[test]
fn bad_quantities() {
    for s in [
        "", "abc", "1.2.3", "12MB", "1 Gi", "Mi", ".", "1e", "1e+", "1ee3", "0x10", " 1",
    ] {
        assert!(
            matches!(parse_memory_bytes(s), Err(QuantityError::Syntax(_))),
            "{s:?} should be a syntax error"
        );
    }
    assert!(matches!(
        parse_cpu_millis("-1"),
        Err(QuantityError::Negative(_))
    ));
    assert!(matches!(
        parse_memory_bytes("16Ei"),
        Err(QuantityError::TooLarge(_))
    ));
    assert!(matches!(
        parse_memory_bytes("1e400"),
        Err(QuantityError::TooLarge(_))
    ));
    assert!(matches!(
        parse_cpu_millis("99999999999999999999999999999999999999999999"),
        Err(QuantityError::TooLarge(_))
    ));
    assert_eq!(parse_memory_bytes("1e-400"), Ok(1));
}

#[test]
fn quantity_from_numbers() {
    let q: Quantity = serde_json::from_value(serde_json::json!(1)).unwrap_or_default();
    assert_eq!(q.as_str(), "1");
    let q: Quantity = serde_json::from_value(serde_json::json!(0.5)).unwrap_or_default();
    assert_eq!(q.cpu_millis(), Ok(500));
    let q: Quantity = serde_json::from_value(serde_json::json!("250m")).unwrap_or_default();
    assert_eq!(
        serde_json::to_value(&q).ok(),
        Some(serde_json::json!("250m"))
    );
    assert!(serde_json::from_value::<Quantity>(serde_json::json!(true)).is_err());
}

#[test]
fn int_or_string() {
    let v: IntOrString = serde_json::from_value(serde_json::json!(8080)).unwrap();
    assert_eq!(v, IntOrString::Int(8080));
    let v: IntOrString = serde_json::from_value(serde_json::json!("http")).unwrap();
    assert_eq!(v, IntOrString::String("http".into()));
    assert_eq!(
        serde_json::to_value(IntOrString::Int(3)).unwrap(),
        serde_json::json!(3)
    );
    let err = serde_json::from_value::<IntOrString>(serde_json::json!(1.5)).unwrap_err();
    assert!(err.to_string().contains("an integer or a string"), "{err}");
    assert!(serde_json::from_value::<IntOrString>(serde_json::json!(1u64 << 40)).is_err());
    assert_eq!(
        IntOrString::String("25%".into()).scaled_value(10, true),
        Some(3)
    );
    assert_eq!(
        IntOrString::String("25%".into()).scaled_value(10, false),
        Some(2)
    );
    assert_eq!(IntOrString::Int(2).scaled_value(10, false), Some(2));
    assert_eq!(
        IntOrString::String("x".into()).scaled_value(10, false),
        None
    );
}

#[test]
fn base64_round_trip() {
    for s in [
        "",
        "f",
        "fo",
        "foo",
        "foob",
        "fooba",
        "foobar",
        "\u{0}\u{ff}",
    ] {
        let enc = encode_base64(s.as_bytes());
        assert_eq!(decode_base64(&enc).unwrap(), s.as_bytes(), "{s:?} -> {enc}");
    }
    assert_eq!(encode_base64(b"foobar"), "Zm9vYmFy");
    assert_eq!(encode_base64(b"fo"), "Zm8=");
    assert_eq!(decode_base64("Zm9v\nYmFy\n").unwrap(), b"foobar");
    assert_eq!(decode_base64("Zm9"), Err(Base64Error::Length));
    assert_eq!(decode_base64("Zm=8"), Err(Base64Error::Padding));
    assert_eq!(decode_base64("Zg==Zg=="), Err(Base64Error::Padding));
    assert_eq!(decode_base64("Zm9*"), Err(Base64Error::Character('*')));
    assert_eq!(decode_base64("not base64!"), Err(Base64Error::Length));
}

#[test]
fn selector_matching() {
    let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut sel = LabelSelector::default();
    assert!(sel.is_empty());
    sel.match_labels.insert("app".into(), "web".into());
    assert!(sel.matches(&labels));
    sel.match_expressions.push(LabelSelectorRequirement {
        key: "tier".into(),
        operator: SelectorOperator::In,
        values: vec!["front".into(), "back".into()],
    });
    assert!(sel.matches(&labels));
    sel.match_expressions.push(LabelSelectorRequirement {
        key: "canary".into(),
        operator: SelectorOperator::DoesNotExist,
        values: vec![],
    });
    assert!(sel.matches(&labels));
    sel.match_expressions.push(LabelSelectorRequirement {
        key: "tier".into(),
        operator: SelectorOperator::NotIn,
        values: vec!["front".into()],
    });
    assert!(!sel.matches(&labels));
}
