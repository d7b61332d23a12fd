use super::*;

const TH: Thresholds = Thresholds {
    min_lift: 2.0,
    min_usage: 0.0,
    min_specificity: 0.0,
};

/// Two groups, one layer, k = 1, 4 experts: group 0 always expert 0,
/// group 1 always expert 3.
fn disjoint() -> RoutingAccumulator {
    let idx: Vec<i16> = vec![0, 3, 0, 3];
    let w = vec![1.0f32; 4];
    let group = vec![0, 1, 0, 1];
    let item = vec![7i64, 7, 8, 8];
    let mut acc = RoutingAccumulator::new(2, 1, 4, 1, true).unwrap();
    let c = Chunk {
        idx: Indices::I16(&idx),
        weight: Values::F32(&w),
        prob: None,
        group: &group,
        item: Some(&item),
    };
    acc.update(&c).unwrap();
    acc
}

#[test]
fn disjoint_groups_diverge_fully_and_identical_not_at_all() {
    let p = disjoint().profile(Some(0), &TH).unwrap();
    // js is (g, h, l) with one layer.
    assert_eq!(p.js, vec![0.0, 1.0, 1.0, 0.0]);
    assert_eq!(p.js_to_reference.unwrap(), vec![0.0, 1.0]);
    assert_eq!(p.usage_entropy, vec![0.0, 0.0]);
    assert_eq!(p.never_used, vec![0.75, 0.75]);
    assert_eq!(p.parallel_overlap.unwrap(), vec![1.0, 0.0, 0.0, 1.0]);
    assert_eq!(p.parallel_items.unwrap(), vec![2, 2, 2, 2]);
    assert_eq!(p.specificity[0], 1.0);
    assert!(p.specialised[0] && p.specialised[7] && !p.specialised[3]);
}

#[test]
fn merge_equals_one_pass_and_parts_round_trip() {
    let whole = disjoint();
    let idx: Vec<i16> = vec![0, 3];
    let w = vec![1.0f32; 2];
    let (mut a, mut b) = (
        RoutingAccumulator::new(2, 1, 4, 1, true).unwrap(),
        RoutingAccumulator::new(2, 1, 4, 1, true).unwrap(),
    );
    for (acc, item) in [(&mut a, 7i64), (&mut b, 8)] {
        let items = [item, item];
        let c = Chunk {
            idx: Indices::I16(&idx),
            weight: Values::F32(&w),
            prob: None,
            group: &[0, 1],
            item: Some(&items),
        };
        acc.update(&c).unwrap();
    }
    a.merge(&b).unwrap();
    assert_eq!(a.parts().unwrap(), whole.parts().unwrap());
    let back = RoutingAccumulator::from_parts(1, 4, 1, true, whole.parts().unwrap()).unwrap();
    assert_eq!(back.parts().unwrap(), whole.parts().unwrap());
}

#[test]
fn bad_index_is_an_error_and_poisons() {
    let mut acc = RoutingAccumulator::new(1, 2, 4, 1, false).unwrap();
    let idx: Vec<i32> = vec![1, 4];
    let w = vec![0.5f32; 2];
    let c = Chunk {
        idx: Indices::I32(&idx),
        weight: Values::F32(&w),
        prob: None,
        group: &[0],
        item: None,
    };
    let e = acc.update(&c).unwrap_err();
    assert!(
        matches!(e, Error::Data(ref m) if m.contains("expert 4")),
        "{e}"
    );
    assert!(acc.parts().is_err());
}

#[test]
fn router_entropy_of_uniform_is_one() {
    let mut acc = RoutingAccumulator::new(1, 1, 4, 1, false).unwrap();
    let prob = vec![f16::from_f32(0.25); 4];
    let w = [f16::from_f32(0.25)];
    let c = Chunk {
        idx: Indices::I16(&[2]),
        weight: Values::F16(&w),
        prob: Some(Values::F16(&prob)),
        group: &[0],
        item: None,
    };
    acc.update(&c).unwrap();
    let p = acc.profile(None, &TH).unwrap();
    assert!((p.token_entropy[0] - 1.0).abs() < 1e-12);
}

#[test]
fn partial_correlation_removes_a_shared_cause() {
    let z = [1.0, 2.0, 3.0, 4.0, 5.0];
    let x = [2.0, 4.1, 5.9, 8.0, 10.0];
    let y = [1.0, 2.0, 3.1, 3.9, 5.0];
    let p = partial_correlation(&x, &y, &z).unwrap();
    assert!(p.r_xy > 0.99 && p.r_xy_z.abs() < p.r_xy);
    assert!(partial_correlation(&x[..3], &y[..3], &z[..3]).is_err());
}
