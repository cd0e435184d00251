//! Every read helper against the known hotel, with its statement budget.

use db_connect::{test_on_backends, testing::TestDatabase};
use entity::{BookingStatus, PaymentStatus};
use optimized_queries::{
    self as oq, AvailabilityCheck, BookingsInRangeQuery, Error, UserBookingsQuery,
};

use crate::fixture::*;

async fn room_types_with_and_without_a_night(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let counted = Counted::open(&test_db).await;
    let db = &counted.db;

    let all = oq::room_types(db).await.unwrap();
    counted.assert_statements(1, "room_types");
    let names: Vec<_> = all
        .iter()
        .map(|rt| (rt.id, rt.name.as_str(), rt.price_per_night, rt.total_rooms))
        .collect();
    assert_eq!(
        names,
        [
            (STANDARD, "Standard", 10_000, 5),
            (SUITE, "Suite", 30_000, 2),
            (ATTIC, "Attic", 5_000, 1)
        ]
    );

    let on = oq::room_types_on(db, day(2)).await.unwrap();
    counted.assert_statements(1, "room_types_on");
    let nights: Vec<_> = on
        .iter()
        .map(|r| {
            r.inventory
                .as_ref()
                .map(|n| (n.total_rooms, n.available_rooms))
        })
        .collect();
    // Standard night 2: Ann's 2 rooms and Bob's 1.
    assert_eq!(nights, [Some((5, 2)), Some((2, 2)), None]);
    let missing = oq::room_types_on(db, day(5)).await.unwrap();
    assert_eq!(
        missing[1].inventory, None,
        "the Suite has no inventory on night 5"
    );
    counted.take();

    let calendar = oq::room_type_calendar(db, STANDARD, range(0, 5))
        .await
        .unwrap();
    counted.assert_statements(1, "room_type_calendar");
    let available: Vec<_> = calendar
        .nights
        .iter()
        .map(|n| (n.date, n.available_rooms))
        .collect();
    assert_eq!(
        available,
        [
            (day(0), 3),
            (day(1), 3),
            (day(2), 2),
            (day(3), 4),
            (day(4), 5)
        ]
    );
    let gap = oq::room_type_calendar(db, SUITE, range(4, 7))
        .await
        .unwrap();
    assert_eq!(
        gap.nights.iter().map(|n| n.date).collect::<Vec<_>>(),
        [day(4), day(6)]
    );
    assert_eq!(
        oq::room_type_calendar(db, ATTIC, range(0, 3))
            .await
            .unwrap()
            .nights,
        []
    );
    assert!(matches!(
        oq::room_type_calendar(db, 99, range(0, 3)).await,
        Err(Error::NotFound {
            what: "room type",
            id: 99
        })
    ));
}

async fn availability_counts_missing_nights_as_none(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let counted = Counted::open(&test_db).await;
    let db = &counted.db;

    let a = oq::availability(db, STANDARD, range(0, 3), rooms(2))
        .await
        .unwrap();
    counted.assert_statements(1, "availability");
    assert_eq!((a.available, a.min_available, a.rooms_needed), (true, 2, 2));
    let a = oq::availability(db, STANDARD, range(0, 3), rooms(3))
        .await
        .unwrap();
    assert_eq!((a.available, a.min_available), (false, 2));
    let a = oq::availability(db, SUITE, range(4, 7), rooms(1))
        .await
        .unwrap();
    assert_eq!(
        (a.available, a.min_available),
        (false, 0),
        "night 5 has no inventory"
    );
    let a = oq::availability(db, ATTIC, range(0, 1), rooms(1))
        .await
        .unwrap();
    assert_eq!((a.available, a.min_available), (false, 0));
    let a = oq::availability(db, STANDARD, range(20, 22), rooms(1))
        .await
        .unwrap();
    assert_eq!(
        (a.available, a.min_available),
        (false, 0),
        "beyond the inventory nothing is for sale"
    );
    assert!(matches!(
        oq::availability(db, 42, range(0, 1), rooms(1)).await,
        Err(Error::NotFound { id: 42, .. })
    ));
    let too_long = oq::DateRange::new(day(0), day(800)).unwrap();
    assert!(matches!(
        oq::availability(db, STANDARD, too_long, rooms(1)).await,
        Err(Error::InvalidRange(_))
    ));
    counted.take();

    let all = oq::all_availability(db, range(1, 3), rooms(1))
        .await
        .unwrap();
    counted.assert_statements(1, "all_availability");
    let summary: Vec<_> = all
        .iter()
        .map(|a| (a.room_type_id, a.available, a.min_available))
        .collect();
    assert_eq!(
        summary,
        [(STANDARD, true, 2), (SUITE, true, 1), (ATTIC, false, 0)]
    );

    let checks = [
        AvailabilityCheck {
            room_type_id: SUITE,
            range: range(4, 7),
            rooms: rooms(1),
        },
        AvailabilityCheck {
            room_type_id: STANDARD,
            range: range(0, 3),
            rooms: rooms(2),
        },
        AvailabilityCheck {
            room_type_id: STANDARD,
            range: range(0, 3),
            rooms: rooms(3),
        },
        AvailabilityCheck {
            room_type_id: SUITE,
            range: range(0, 1),
            rooms: rooms(2),
        },
    ];
    let answers = oq::batch_availability(db, &checks).await.unwrap();
    counted.assert_statements(1, "batch_availability");
    let summary: Vec<_> = answers
        .iter()
        .map(|a| {
            (
                a.room_type_id,
                a.start_date,
                a.rooms_needed,
                a.available,
                a.min_available,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (SUITE, day(4), 1, false, 0),
            (STANDARD, day(0), 2, true, 2),
            (STANDARD, day(0), 3, false, 2),
            (SUITE, day(0), 2, true, 2),
        ],
        "answers come in the order of the checks"
    );
    let unknown = [AvailabilityCheck {
        room_type_id: 77,
        range: range(0, 1),
        rooms: rooms(1),
    }];
    assert!(matches!(
        oq::batch_availability(db, &unknown).await,
        Err(Error::NotFound { id: 77, .. })
    ));
    assert!(matches!(
        oq::batch_availability(db, &[]).await,
        Err(Error::InvalidInput(_))
    ));
}

async fn bookings_with_relations_in_fixed_statements(test_db: TestDatabase) {
    let (test_db, ids) = known_hotel(test_db).await;
    let counted = Counted::open(&test_db).await;
    let db = &counted.db;

    let ann = oq::user_bookings(db, ANN, UserBookingsQuery::default())
        .await
        .unwrap();
    counted.assert_statements(1, "user_bookings");
    assert_eq!(
        ann.iter().map(|b| b.id).collect::<Vec<_>>(),
        [ids.ann_suite, ids.ann_standard],
        "newest first"
    );
    assert_eq!(ann[0].room_type.as_ref().unwrap().name, "Suite");
    assert_eq!(ann[1].room_type.as_ref().unwrap().price_per_night, 10_000);
    assert!(
        ann.iter()
            .all(|b| b.payments.is_none() && b.guest.is_none())
    );

    let with_payments = oq::user_bookings(
        db,
        ANN,
        UserBookingsQuery {
            include_payments: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    counted.assert_statements(1, "user_bookings with payments, nested in one statement");
    let payments: Vec<_> = with_payments
        .iter()
        .map(|b| {
            b.payments
                .as_ref()
                .unwrap()
                .iter()
                .map(|p| (p.amount, p.status))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        payments,
        [
            vec![(6_000, PaymentStatus::Pending)],
            vec![(12_000, PaymentStatus::Paid)]
        ]
    );

    let checked_in = oq::user_bookings(
        db,
        ANN,
        UserBookingsQuery {
            status: Some(BookingStatus::CheckedIn),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        checked_in.iter().map(|b| b.id).collect::<Vec<_>>(),
        [ids.ann_standard]
    );
    let one = oq::user_bookings(
        db,
        BOB,
        UserBookingsQuery {
            limit: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        one.iter().map(|b| b.id).collect::<Vec<_>>(),
        [ids.bob_cancelled]
    );
    assert!(matches!(
        oq::user_bookings(
            db,
            BOB,
            UserBookingsQuery {
                limit: 0,
                ..Default::default()
            }
        )
        .await,
        Err(Error::InvalidInput(_))
    ));
    assert!(
        oq::user_bookings(db, 999, UserBookingsQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    counted.take();

    let in_range = oq::bookings_in_range(db, BookingsInRangeQuery::new(range(3, 10)))
        .await
        .unwrap();
    counted.assert_statements(1, "bookings_in_range");
    assert_eq!(
        in_range.iter().map(|b| b.id).collect::<Vec<_>>(),
        [ids.bob_standard],
        "only Bob's stay has a night from day 3 on"
    );
    let mut query = BookingsInRangeQuery::new(range(0, 1));
    query.include_guest = true;
    let night0 = oq::bookings_in_range(db, query).await.unwrap();
    counted.assert_statements(1, "bookings_in_range with guests");
    assert_eq!(
        night0
            .iter()
            .map(|b| (b.id, b.guest.as_ref().unwrap().name.as_str()))
            .collect::<Vec<_>>(),
        [(ids.ann_standard, "Ann"), (ids.bob_cancelled, "Bob")]
    );
    query.status = Some(BookingStatus::Cancelled);
    query.room_type_id = Some(STANDARD);
    assert_eq!(
        oq::bookings_in_range(db, query)
            .await
            .unwrap()
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>(),
        [ids.bob_cancelled]
    );
    counted.take();

    let details = oq::booking_details(db, ids.ann_standard).await.unwrap();
    counted.assert_statements(2, "booking_details");
    assert_eq!(details.guest.as_ref().unwrap().email, "ann@example.com");
    assert_eq!(details.room_type.as_ref().unwrap().name, "Standard");
    assert_eq!(details.payments.as_ref().unwrap().len(), 1);
    assert_eq!(
        (
            details.status,
            details.total_price,
            details.deposit_amount,
            details.is_deposit_paid
        ),
        (BookingStatus::CheckedIn, 60_000, 12_000, true)
    );
    assert!(matches!(
        oq::booking_details(db, 12345).await,
        Err(Error::NotFound {
            what: "booking",
            ..
        })
    ));
    counted.take();

    let by_ids = oq::bookings_by_ids(db, &[ids.bob_standard, 999, ids.ann_suite])
        .await
        .unwrap();
    counted.assert_statements(1, "bookings_by_ids");
    assert_eq!(
        by_ids.iter().map(|b| b.id).collect::<Vec<_>>(),
        [ids.bob_standard, ids.ann_suite],
        "input order, unknown ids left out"
    );
    assert_eq!(by_ids[0].guest.as_ref().unwrap().name, "Bob");
    assert!(oq::bookings_by_ids(db, &[]).await.unwrap().is_empty());
}

async fn reports_aggregate_in_the_database(test_db: TestDatabase) {
    let (test_db, _) = known_hotel(test_db).await;
    let counted = Counted::open(&test_db).await;
    let db = &counted.db;

    let stats = oq::booking_statistics(db, range(0, 10), None)
        .await
        .unwrap();
    counted.assert_statements(1, "booking_statistics");
    assert_eq!(
        (
            stats.total_bookings,
            stats.active_bookings,
            stats.revenue,
            stats.rooms,
            stats.room_nights,
            stats.average_value
        ),
        (4, 3, 110_000, 4, 9, 36_666)
    );
    let breakdown: Vec<_> = stats
        .by_status
        .iter()
        .map(|b| (b.status, b.bookings, b.value, b.rooms, b.room_nights))
        .collect();
    assert_eq!(
        breakdown,
        [
            (BookingStatus::Provisional, 2, 50_000, 2, 3),
            (BookingStatus::Cancelled, 1, 10_000, 1, 1),
            (BookingStatus::CheckedIn, 1, 60_000, 2, 6),
        ]
    );
    let suite = oq::booking_statistics(db, range(0, 10), Some(SUITE))
        .await
        .unwrap();
    assert_eq!((suite.total_bookings, suite.revenue), (1, 30_000));
    let later = oq::booking_statistics(db, range(1, 10), None)
        .await
        .unwrap();
    assert_eq!(
        (later.total_bookings, later.revenue),
        (2, 50_000),
        "arrivals from day 1 on"
    );
    counted.take();

    let occupancy = oq::occupancy(db, range(0, 10), None).await.unwrap();
    counted.assert_statements(1, "occupancy");
    let per_type: Vec<_> = occupancy
        .by_room_type
        .iter()
        .map(|o| (o.room_type_id, o.room_nights_sold, o.room_nights_available))
        .collect();
    // Ann's checked-in stay counts: 2 rooms × 3 nights + Bob 1 × 2 on Standard; Ann 1 on Suite.
    assert_eq!(per_type, [(STANDARD, 8, 50), (SUITE, 1, 18), (ATTIC, 0, 0)]);
    assert_eq!(
        (occupancy.room_nights_sold, occupancy.room_nights_available),
        (9, 68)
    );
    assert!((occupancy.rate - 9.0 / 68.0).abs() < 1e-12);
    let clipped = oq::occupancy(db, range(2, 3), Some(STANDARD))
        .await
        .unwrap();
    assert_eq!(
        (
            clipped.room_nights_sold,
            clipped.room_nights_available,
            clipped.by_room_type.len()
        ),
        (3, 5, 1)
    );
    counted.take();

    let ann = oq::payment_summary(db, ANN).await.unwrap();
    counted.assert_statements(1, "payment_summary");
    assert_eq!((ann.count, ann.paid_amount), (2, 12_000));
    assert_eq!(
        ann.by_status
            .iter()
            .map(|t| (t.status, t.count, t.amount))
            .collect::<Vec<_>>(),
        [
            (PaymentStatus::Pending, 1, 6_000),
            (PaymentStatus::Paid, 1, 12_000)
        ]
    );
    assert_eq!(oq::payment_summary(db, 999).await.unwrap().count, 0);
}

test_on_backends!(
    room_types_with_and_without_a_night,
    availability_counts_missing_nights_as_none,
    bookings_with_relations_in_fixed_statements,
    reports_aggregate_in_the_database,
);
